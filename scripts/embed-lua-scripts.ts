import { writeFile } from "node:fs/promises";
import { EMBEDDED_MODULE, readLuaFiles, renderEmbeddedModule } from "./lua-embedding.js";

/** `npm run lua`: regenerates the module that embeds src/store/scripts/*.lua for the build. */
await writeFile(EMBEDDED_MODULE, renderEmbeddedModule(await readLuaFiles()));
process.stdout.write(`wrote ${EMBEDDED_MODULE}\n`);
