import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";

/**
 * Data moves one way (intake → plan → schedule → deliver → record → report): each folder of src/
 * imports only from the layers it builds on, so nothing downstream calls back upstream and the
 * domain never imports an edge. Biome forbids cycles; this pins the direction.
 */

/** What each folder of src/ may import from (besides itself and npm packages). */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  domain: [],
  store: ["domain"],
  templates: ["domain", "config/public-paths", "config/config-files", "channels/channel"],
  channels: ["domain", "config/public-paths", "config/env"],
  config: ["domain", "templates"],
  queue: ["domain", "store", "templates", "channels/channel", "logger", "metrics"],
  reports: ["domain", "store", "channels/channel", "queue/names", "logger", "metrics"],
  operations: ["domain", "store", "queue", "reports", "templates/compose-message"],
  console: [
    "domain",
    "operations",
    "reports",
    "store",
    "queue/names",
    "config/env",
    "http/bearer-token",
  ],
  http: ["domain", "config/public-paths"],
};

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

/** Every relative import of a file, as a path inside src/ without extension (`store/keys`). */
function importsOf(file: string, text: string): string[] {
  const found = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)];
  return found.map((match) =>
    path
      .relative("src", path.resolve(path.dirname(file), match[1] ?? ""))
      .replace(/\.js$/, "")
      .split(path.sep)
      .join("/"),
  );
}

describe("the layers of src/", () => {
  it("import only from the layers they build on", async () => {
    const violations: string[] = [];
    for (const file of await sourceFiles("src")) {
      const layer = path.relative("src", file).split(path.sep)[0] ?? "";
      const allowed = MAY_IMPORT[layer];
      if (!allowed) continue;
      for (const target of importsOf(file, await readFile(file, "utf8"))) {
        if (target.startsWith(`${layer}/`)) continue;
        const ok = allowed.some((entry) => target === entry || target.startsWith(`${entry}/`));
        if (!ok) violations.push(`${file} imports ${target}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("catch an import against the flow", () => {
    expect(importsOf("src/store/x.ts", 'import { a } from "../queue/names.js";')).toEqual([
      "queue/names",
    ]);
    expect(importsOf("src/queue/x.ts", 'import type { B } from "./y.js";')).toEqual(["queue/y"]);
  });
});
