import type { DescMessage, MessageShape } from "@bufbuild/protobuf";

const immutable = new WeakSet<object>();
const encoded = new WeakMap<object, Buffer>();

/**
 * Marks a response message that its owner will never change (a cached Verify
 * answer), so the grpc-js listener serializes it once and reuses the bytes.
 * Mutating a message after marking it is a bug.
 *
 * @example
 * ```ts
 * const NOT_FOUND = markImmutable(create(VerifyResponseSchema, { result: VerifyResult.NOT_FOUND }));
 * ```
 */
export function markImmutable<T extends object>(message: T): T {
  immutable.add(message);
  return message;
}

/** Serializes `message`, reusing earlier bytes when it was marked immutable. */
export function serializeMessage<D extends DescMessage>(
  message: MessageShape<D>,
  serialize: (message: MessageShape<D>) => Buffer,
): Buffer {
  if (!immutable.has(message)) return serialize(message);
  let bytes = encoded.get(message);
  if (bytes === undefined) {
    bytes = serialize(message);
    encoded.set(message, bytes);
  }
  return bytes;
}
