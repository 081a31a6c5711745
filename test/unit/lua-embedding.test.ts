import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import {
  EMBEDDED_MODULE,
  readLuaFiles,
  renderEmbeddedModule,
} from "../../scripts/lua-embedding.js";

const HEADER = "--[[\n  Does a thing.\n\n  Input:\n    KEYS[1] a key\n    KEYS[2] another\n]]\n";

describe("the embedded Lua scripts", () => {
  it("match the .lua files (run `npm run lua` after editing a script)", async () => {
    const expected = renderEmbeddedModule(await readLuaFiles());
    expect(await readFile(EMBEDDED_MODULE, "utf8")).toBe(expected);
  });

  it("build no key name inside a script: every key a script touches comes in KEYS", async () => {
    for (const [name, source] of await readLuaFiles()) {
      // A key built by concatenation (`prefix .. 'agg:' .. hour`) could land in another slot.
      expect(source, name).not.toMatch(/redis\.call\('\w+',\s*[^,)]*\.\./);
      expect(source, name).not.toMatch(/redis\.call\('\w+',\s*'/);
    }
  });

  it("resolve includes in place and count the KEYS a header declares", () => {
    const module = renderEmbeddedModule(
      new Map([
        ["lib/shared.lua", "local SHARED = 1\n"],
        ["thing.lua", `${HEADER}--!include lib/shared.lua\nreturn SHARED\n`],
      ]),
    );
    expect(module).toContain('"thing": {\n    numberOfKeys: 2,');
    expect(module).toContain(JSON.stringify(`${HEADER}local SHARED = 1\nreturn SHARED\n`));
    expect(module).not.toContain('"lib/shared"');
  });

  it("leave the KEYS count to the caller when the header lists a variable number", () => {
    const header = "--[[\n    KEYS[1] a key\n    KEYS[1 + i] one per item\n]]\n";
    const module = renderEmbeddedModule(new Map([["many.lua", `${header}return 1\n`]]));
    expect(module).toContain('"many": {\n    numberOfKeys: undefined,');
  });

  it("name the file and the problem for a missing include or header", () => {
    expect(() =>
      renderEmbeddedModule(new Map([["a.lua", `${HEADER}--!include lib/gone.lua\n`]])),
    ).toThrow("src/store/scripts/a.lua: includes lib/gone.lua, which does not exist");
    expect(() => renderEmbeddedModule(new Map([["b.lua", "return 1\n"]]))).toThrow(
      "src/store/scripts/b.lua: no --[[ header ]] listing KEYS and ARGV",
    );
  });
});
