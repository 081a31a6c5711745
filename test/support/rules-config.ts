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
