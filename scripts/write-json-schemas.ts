import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { JSON_SCHEMA_FILES, renderJsonSchema } from "../src/config/json-schemas.js";

/** `npm run schema`: regenerates the committed JSON Schema files from the zod schemas. */
for (const [file, build] of Object.entries(JSON_SCHEMA_FILES)) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, renderJsonSchema(build()));
  process.stdout.write(`wrote ${file}\n`);
}
