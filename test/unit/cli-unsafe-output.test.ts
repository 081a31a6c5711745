import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPlan } from "../../src/cli/plan-command.js";
import { runSimulate } from "../../src/cli/simulate-command.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput, SHIPPED_CONFIG_DIR } from "../support/fixtures.js";

/**
 * What publishers wrote reaches the operator's terminal from `plan` and `simulate` too, as text
 * and as JSON (which JSON.stringify leaves raw above U+001F: C1 controls, DEL, bidi marks and
 * overrides, line separators): none of them is printed raw.
 */
const UNSAFE = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
const unsafeLines = (text: string) => text.split("\n").filter((line) => UNSAFE.test(line));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "followups-unsafe-output-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// An operating system command (U+009D, OSC) retitles a terminal that reads C1 controls in UTF-8;
// a right-to-left override reverses the rest of the line.
const spec = {
  id: "evt-\u202ebidi",
  orderId: "ord-\u009d0;owned\u0007",
  occurredAt: "2026-11-23T10:00:00Z",
  customer: { id: "cus-\u200f1\u2028", phone: undefined },
  items: [item("televisions", "1299.00", { name: "TV\u007f\u2066" })],
};
const NOW = "2026-11-23T10:00:00Z";

describe("plan and simulate print what publishers wrote", () => {
  it("plan: the table and --json escape it", async () => {
    const file = path.join(dir, "event.json");
    await writeFile(file, JSON.stringify(purchaseInput(spec)));
    const table = captureIo();
    await runPlan(file, { config: SHIPPED_CONFIG_DIR, now: NOW }, table);
    expect(unsafeLines(table.output())).toEqual([]);
    expect(table.output()).toContain("event evt-\\u202ebidi, order ord-\\u009d0;owned\\u0007,");
    const json = captureIo();
    await runPlan(file, { config: SHIPPED_CONFIG_DIR, now: NOW, json: true }, json);
    expect(unsafeLines(json.output())).toEqual([]);
    // Escaped as JSON reads it back: the same id.
    expect((JSON.parse(json.output()) as { eventId: string }).eventId).toBe("evt-\u202ebidi");
  });

  it("simulate: its bad lines, --json and --steps escape it", async () => {
    const file = path.join(dir, "events.ndjson");
    const bad = { ...purchaseInput(spec), total: { amount: "1", currency: "\u202eGB" } };
    await writeFile(file, `${JSON.stringify(purchaseInput(spec))}\n${JSON.stringify(bad)}\n`);
    for (const options of [{}, { json: true }, { steps: true }]) {
      const io = captureIo();
      await runSimulate(file, { config: SHIPPED_CONFIG_DIR, ...options }, io);
      expect(unsafeLines(io.output()), JSON.stringify(options)).toEqual([]);
      expect(unsafeLines(io.errors()), JSON.stringify(options)).toEqual([]);
      expect(io.output() + io.errors()).toContain("\\u202eGB");
    }
  });
});
