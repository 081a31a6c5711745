import { cp, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseDocument } from "yaml";

export interface BenchConfigOptions {
  /** Messages per second per channel, shared by all worker processes. */
  readonly emailRate: number;
  readonly smsRate: number;
}

/**
 * Copies the shipped config into `dir` with send windows open all day and no frequency caps, so
 * what a bench measures never depends on the hour it runs at or on caps between its customers.
 * Rules, templates and grace periods stay as shipped.
 */
export async function writeBenchConfig(dir: string, options: BenchConfigOptions): Promise<string> {
  await cp("config", dir, { recursive: true });
  const rulesFile = path.join(dir, "rules.yaml");
  const doc = parseDocument(await readFile(rulesFile, "utf8"));
  const allDay = {
    start: "00:00",
    end: "24:00",
    days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    closedOnHolidays: false,
  };
  for (const channel of ["email", "sms", "voice"])
    doc.setIn(["sendWindows", channel], doc.createNode(allDay));
  doc.setIn(["frequencyCaps"], doc.createNode({ email: [], sms: [], voice: [] }));
  doc.setIn(["channels", "email", "ratePerSecond"], options.emailRate);
  doc.setIn(["channels", "sms", "ratePerSecond"], options.smsRate);
  await writeFile(rulesFile, doc.toString());
  return dir;
}
