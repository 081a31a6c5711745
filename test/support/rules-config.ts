import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseDocument } from "yaml";

/** The owner most tests alert: Maria, weekly reports, unhappy replies at once. */
export const ALERTED_OWNER = {
  name: "Maria",
  email: "maria@shop.example",
  timezone: "Europe/London",
  frequency: "weekly",
  alerts: true,
} as const;

/** Sets the owners in a pipeline's rules file (before its worker starts, or for a reload). */
export async function withOwners(configDir: string, owners: unknown[]): Promise<void> {
  const file = path.join(configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  doc.setIn(["owners"], doc.createNode(owners));
  await writeFile(file, doc.toString());
}

/**
 * The accessories rule with codes of its own: 15% for 7 days, prefix KIT (before the worker
 * starts, or for a reload).
 */
export async function withAccessoryCodes(configDir: string): Promise<void> {
  const file = path.join(configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  if (doc.getIn(["rules", 3, "id"]) !== "accessories")
    throw new Error("the fourth rule of the shipped rules is not accessories");
  doc.setIn(
    ["rules", 3, "discount"],
    doc.createNode({ percent: 15, validFor: "P7D", codePrefix: "KIT" }),
  );
  await writeFile(file, doc.toString());
}
