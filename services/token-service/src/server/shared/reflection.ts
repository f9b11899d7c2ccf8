import {
  create,
  type DescFile,
  type DescService,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { reflectionV1 as v1, reflectionV1alpha as v1alpha } from "@latchkey/proto/grpc";
import { createDescriptorIndex } from "./descriptor-index.js";
import { registerService, type ServiceRegistration } from "./service-registration.js";

type Response = MessageInitShape<typeof v1.ServerReflectionResponseSchema>;

/**
 * gRPC server reflection, `grpc.reflection.v1` and `v1alpha`, so `buf curl`
 * and grpcurl work without a local schema. Lists `served` and the two
 * reflection services; answers file and symbol requests from the generated
 * descriptors of those services and their imports. No npm package serves
 * reflection for connect-node (`@grpc/reflection` is grpc-js only), hence this.
 *
 * @example
 * ```ts
 * const services = [tokens, teams, health];
 * const all = [...services, ...createReflectionServices(services)];
 * ```
 */
export function createReflectionServices(
  served: readonly (DescService | ServiceRegistration)[],
): [ServiceRegistration, ServiceRegistration] {
  const services = [
    ...served.map((s) => ("kind" in s ? s : s.service)),
    v1.ServerReflection,
    v1alpha.ServerReflection,
  ];
  const names = [...new Set(services.map((s) => s.typeName))].sort();
  const index = createDescriptorIndex(services.map((s) => s.file));
  const encoded = new Map<DescFile, Uint8Array>();
  const encode = (file: DescFile) => {
    let bytes = encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file, bytes);
    }
    return bytes;
  };

  /** Answers one request; `sent` holds the files this stream already has. */
  const answer = (request: v1.ServerReflectionRequest, sent: Set<string>): Response => {
    const reply = (messageResponse: Response["messageResponse"]): Response => ({
      validHost: request.host,
      originalRequest: request,
      messageResponse,
    });
    const notFound = (what: string) =>
      reply({
        case: "errorResponse",
        value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
      });
    const files = (file: DescFile | undefined, what: string) => {
      if (file === undefined) {
        return notFound(what);
      }
      // The asked-for file always; its imports only once per stream (clients cache them).
      const fresh = index.withDependencies(file).filter((f) => f === file || !sent.has(f.proto.name));
      for (const f of fresh) {
        sent.add(f.proto.name);
      }
      return reply({ case: "fileDescriptorResponse", value: { fileDescriptorProto: fresh.map(encode) } });
    };

    const { messageRequest: req } = request;
    switch (req.case) {
      case "listServices":
        return reply({ case: "listServicesResponse", value: { service: names.map((name) => ({ name })) } });
      case "fileByFilename":
        return files(index.file(req.value), `file ${req.value}`);
      case "fileContainingSymbol":
        return files(index.fileContainingSymbol(req.value), `symbol ${req.value}`);
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = req.value;
        const file = index.fileContainingExtension(containingType, extensionNumber);
        return files(file, `extension ${extensionNumber} of ${containingType}`);
      }
      case "allExtensionNumbersOfType": {
        const extensionNumber = index.extensionNumbers(req.value);
        return extensionNumber === undefined
          ? notFound(`message type ${req.value}`)
          : reply({
              case: "allExtensionNumbersResponse",
              value: { baseTypeName: req.value, extensionNumber },
            });
      }
      default:
        throw new ConnectError("reflection request names no message_request", Code.InvalidArgument);
    }
  };

  const reflectionV1 = registerService(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const request of requests) {
        yield answer(request, sent);
      }
    },
  });
  // v1alpha is v1 under another package name, field for field: convert through the wire format.
  const reflectionV1alpha = registerService(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const request of requests) {
        const asV1 = fromBinary(
          v1.ServerReflectionRequestSchema,
          toBinary(v1alpha.ServerReflectionRequestSchema, request),
        );
        const response = create(v1.ServerReflectionResponseSchema, answer(asV1, sent));
        yield fromBinary(
          v1alpha.ServerReflectionResponseSchema,
          toBinary(v1.ServerReflectionResponseSchema, response),
        );
      }
    },
  });
  return [reflectionV1, reflectionV1alpha];
}
