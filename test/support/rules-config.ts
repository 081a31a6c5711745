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

/**
 * Two discount rules under a discount cooldown of 30 days (before the worker starts, or for a
 * reload): garden care's offer `garden` after the purchase (default a day), a sofa's `sofa` after
 * it (default sixty days). Both come first and are final.
 */
export async function withTwoOffers(
  configDir: string,
  { garden = "P1D", sofa = "P60D" }: { garden?: string; sofa?: string } = {},
): Promise<void> {
  const file = path.join(configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  doc.set("cooldowns", doc.createNode({ discount: "P30D" }));
  const rules = doc.get("rules") as { items: { get(key: string): unknown }[] };
  rules.items = rules.items.filter((rule) => !String(rule.get("id")).endsWith("-offer"));
  for (const [id, category, delay] of [
    ["garden-offer", "garden-care", garden],
    ["sofa-offer", "sofas", sofa],
  ])
    rules.items.unshift(
      doc.createNode({
        id,
        priority: 190,
        final: true,
        when: { anyItem: { categories: [category] } },
        steps: [{ kind: "discount", channel: "email", template: "loyalty-discount", delay }],
      }),
    );
  await writeFile(file, doc.toString());
}
