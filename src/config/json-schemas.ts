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

type SchemaNode = {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
  $ref?: string;
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
};

let rulesSchema: SchemaNode | undefined;

/**
 * The keys the rules file allows in the mapping at `path` (e.g. `rules[0].steps[0]`), read from
 * its JSON Schema, so a misspelt key is answered with the keys that belong exactly there.
 */
export function allowedRuleFileKeys(path: readonly PropertyKey[]): string[] {
  rulesSchema ??= JSON_SCHEMA_FILES["config/schema/rules.schema.json"]() as SchemaNode;
  const root = rulesSchema as SchemaNode & { $defs?: Record<string, SchemaNode> };
  const resolve = (node: SchemaNode | undefined): SchemaNode | undefined => {
    if (!node) return undefined;
    if (node.$ref) return resolve(root.$defs?.[node.$ref.replace("#/$defs/", "")]);
    const choice = [...(node.anyOf ?? []), ...(node.oneOf ?? [])]
      .map(resolve)
      .find((n) => n?.properties || n?.items);
    return choice ?? node;
  };
  let node = resolve(root);
  for (const key of path) {
    if (typeof key === "number") node = resolve(node?.items);
    else {
      const next = node?.properties?.[String(key)];
      const extra =
        typeof node?.additionalProperties === "object" ? node.additionalProperties : undefined;
      node = resolve(next ?? extra);
    }
  }
  return Object.keys(node?.properties ?? {});
}
