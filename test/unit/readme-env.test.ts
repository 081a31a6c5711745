import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ENV_VARIABLES, envSchema, readEnv } from "../../src/config/env.js";

interface Row {
  readonly line: string;
  readonly name: string;
  readonly defaultCell: string;
  readonly meaning: string;
}

/** The table of README.md's "Configuration" section: its lines, and its rows after the header. */
function configurationTable(): { lines: string[]; rows: Row[] } {
  const readme = readFileSync("README.md", "utf8").split("\n");
  const section = readme.indexOf("## Configuration");
  if (section === -1) throw new Error('README.md has no "## Configuration" section');
  const end = readme.findIndex((line, i) => i > section && line.startsWith("## "));
  const body = readme.slice(section + 1, end === -1 ? undefined : end);
  const start = body.findIndex((line) => line.startsWith("|"));
  const after = body.findIndex((line, i) => i > start && !line.startsWith("|"));
  const lines = body.slice(start, after === -1 ? undefined : after);
  const [header, separator, ...rowLines] = lines;
  expect(header).toMatch(/^\| Variable +\| Default +\| Meaning +\|$/);
  expect(separator).toMatch(/^\| -+ \| -+ \| -+ \|$/);
  const rows = rowLines.map((line) => {
    const cells = line
      .slice(1, -1)
      .split(" | ")
      .map((cell) => cell.trim());
    expect(cells, line).toHaveLength(3);
    const [nameCell = "", defaultCell = "", meaning = ""] = cells;
    const name = /^`([A-Z0-9_]+)`$/.exec(nameCell)?.[1];
    if (name === undefined) throw new Error(`not a variable name in backticks: ${nameCell}`);
    return { line, name, defaultCell, meaning };
  });
  return { lines, rows };
}

describe("README configuration table", () => {
  const { lines, rows } = configurationTable();
  const documented = rows.map((row) => row.name);
  const accepted: readonly string[] = ENV_VARIABLES;

  it("lists every variable the env schema accepts", () => {
    expect(accepted.filter((name) => !documented.includes(name))).toEqual([]);
  });

  it("lists only variables the env schema accepts, each once", () => {
    expect(documented.filter((name) => !accepted.includes(name))).toEqual([]);
    expect(documented.filter((name, i) => documented.indexOf(name) !== i)).toEqual([]);
  });

  it("says what each one does", () => {
    for (const row of rows) expect(row.meaning, row.name).not.toBe("");
  });

  it("shows the schema's default of each variable that has one", () => {
    const defaults = envSchema.parse({}) as Record<string, unknown>;
    const withDefault = rows.filter((row) => defaults[row.name] !== undefined);
    expect(withDefault.length).toBeGreaterThan(20);
    for (const row of withDefault) {
      expect(row.defaultCell, row.name).toBe(`\`${String(defaults[row.name])}\``);
    }
  });

  it("means it when a default is empty or in parentheses: an empty value counts as unset", () => {
    const unsetByDefault = rows.filter(
      (row) => row.defaultCell === "" || /^\(.*\)$/.test(row.defaultCell),
    );
    expect(unsetByDefault.map((row) => row.name)).toContain("REPLY_TO");
    for (const row of unsetByDefault) {
      const result = readEnv({ [row.name]: "" });
      if (!result.ok) throw new Error(`${row.name}="": ${result.problems.join("; ")}`);
      expect(result.env[row.name as keyof typeof result.env], row.name).toBeUndefined();
    }
  });

  it("keeps its columns aligned, as the README's other tables", () => {
    const widths = new Set(lines.map((line) => line.length));
    expect([...widths]).toHaveLength(1);
  });
});
