import type { DescFile } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";

/** Lookups that server reflection answers, over a closed set of proto files. */
export interface DescriptorIndex {
  /** The file named `name`, suffix included (`latchkey/v1/team.proto`). */
  file(name: string): DescFile | undefined;
  /** The file declaring a message, enum, service, method, field or extension, by full name. */
  fileContainingSymbol(symbol: string): DescFile | undefined;
  /** The file declaring extension `number` of `extendee`. */
  fileContainingExtension(extendee: string, number: number): DescFile | undefined;
  /** The extension numbers declared for message `extendee`; undefined when it is not a known message. */
  extensionNumbers(extendee: string): number[] | undefined;
  /** `file` and everything it imports, transitively; every import before its importer. */
  withDependencies(file: DescFile): DescFile[];
}

/**
 * Indexes `roots` and their imports. protobuf-es registries look up types but
 * neither files by name nor methods and fields, so reflection keeps its own
 * maps, built once.
 */
export function createDescriptorIndex(roots: Iterable<DescFile>): DescriptorIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const messages = new Set<string>();
  const extensions = new Map<string, Map<number, DescFile>>();

  const add = (file: DescFile) => {
    // DescFile.name drops the .proto suffix; reflection speaks in full file names.
    if (files.has(file.proto.name)) {
      return;
    }
    files.set(file.proto.name, file);
    file.dependencies.forEach(add);
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      switch (type.kind) {
        case "message":
          messages.add(type.typeName);
          for (const field of type.fields) {
            symbols.set(`${type.typeName}.${field.name}`, file);
          }
          break;
        case "service":
          for (const method of type.methods) {
            symbols.set(`${type.typeName}.${method.name}`, file);
          }
          break;
        case "extension": {
          const byNumber = extensions.get(type.extendee.typeName) ?? new Map<number, DescFile>();
          byNumber.set(type.number, file);
          extensions.set(type.extendee.typeName, byNumber);
          break;
        }
      }
    }
  };
  for (const root of roots) {
    add(root);
  }

  return {
    file: (name) => files.get(name),
    fileContainingSymbol: (symbol) => symbols.get(symbol.replace(/^\./, "")),
    fileContainingExtension: (extendee, number) => extensions.get(extendee.replace(/^\./, ""))?.get(number),
    extensionNumbers(extendee) {
      const name = extendee.replace(/^\./, "");
      return messages.has(name) ? [...(extensions.get(name)?.keys() ?? [])].sort((a, b) => a - b) : undefined;
    },
    withDependencies(file) {
      const ordered: DescFile[] = [];
      const seen = new Set<string>();
      const visit = (f: DescFile) => {
        if (!seen.has(f.proto.name)) {
          seen.add(f.proto.name);
          f.dependencies.forEach(visit);
          ordered.push(f);
        }
      };
      visit(file);
      return ordered;
    },
  };
}
