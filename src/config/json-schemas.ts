import { z } from "zod";
import { eventSchema } from "../domain/events.js";
import { rulesFileSchema } from "./rules-file.js";

/**
 * JSON Schema files derived from the zod schemas, for publishers in other languages and for
 * editors that autocomplete config/rules.yaml. `npm run schema` writes them; a test keeps them fresh.
 */
export const JSON_SCHEMA_FILES = {
  "config/schema/events.v1.schema.json": () =>
    withId(
      z.toJSONSchema(eventSchema, { io: "input", unrepresentable: "any" }),
      "events.v1",
      "Follow-ups event contract v1",
    ),
  "config/schema/rules.schema.json": () =>
    withId(
      z.toJSONSchema(rulesFileSchema, { io: "input", unrepresentable: "any" }),
      "rules",
      "Follow-ups rules file (config/rules.yaml)",
    ),
} as const;

function withId(
  schema: Record<string, unknown>,
  id: string,
  title: string,
): Record<string, unknown> {
  return { ...schema, $id: `https://followups.dev/schema/${id}.schema.json`, title };
}

/** Serialised exactly as committed, so a freshness test can compare text. */
export function renderJsonSchema(schema: Record<string, unknown>): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/** Every property name the rules file knows, to suggest the one an operator meant. */
export function knownRuleFileKeys(): ReadonlySet<string> {
  const keys = new Set<string>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === "object") {
      for (const [key, value] of Object.entries(node)) {
        if (key === "properties" && value && typeof value === "object") {
          for (const name of Object.keys(value)) keys.add(name);
        }
        visit(value);
      }
    }
  };
  visit(JSON_SCHEMA_FILES["config/schema/rules.schema.json"]());
  return keys;
}
