import { describe, expect, it } from "vitest";
import { formatPath } from "../../src/domain/events.js";
import { duplicateKeyPath, duplicateKeyProblem } from "../../src/domain/json-duplicate-keys.js";

describe("duplicateKeyPath", () => {
  it.each([
    ["no object", "[1, 2, 3]"],
    ["keys once each", '{"id": "e-1", "customer": {"id": "c-1"}}'],
    ["one name in two objects", '{"items": [{"sku": "A"}, {"sku": "B"}]}'],
    [
      "look-alike text inside strings",
      '{"a": "\\"a\\": 1, {\\"a\\"", "b": "\\\\", "c": "}, \\"a\\":"}',
    ],
    ["keys that differ by case or white space", '{"id": 1, "Id": 2, "id ": 3}'],
  ])("finds none: %s", (_, text) => {
    expect(duplicateKeyPath(text)).toBeUndefined();
  });

  it.each([
    ["at the top", '{"orderId": "o-1", "id": "e-1", "orderId": "o-2"}', "orderId"],
    [
      "in a nested object",
      '{"customer": {"email": "a@x.example", "email": "b@x.example"}}',
      "customer.email",
    ],
    [
      "in a list of events",
      '[{"id": 1}, {"id": 2, "items": [{"sku": "A", "sku": "B"}]}]',
      "[1].items[0].sku",
    ],
    [
      "in a list's item",
      '{"items": [{"sku": "A"}, {"sku": "B", "name": "x", "sku": "C"}]}',
      "items[1].sku",
    ],
    ["written with an escape", '{"id": "e-1", "\\u0069d": "e-2"}', "id"],
    ["after a nested object closed", '{"a": {"b": 1, "c": [1, {"d": 2}]}, "e": 3, "a": 4}', "a"],
  ])("names the key given twice: %s", (_, text, path) => {
    expect(formatPath(duplicateKeyPath(text) ?? [])).toBe(path);
  });

  it("walks deep nesting without running out of stack", () => {
    const depth = 200_000;
    const deep = `${'{"a":'.repeat(depth)}{"b": 1, "b": 2}${"}".repeat(depth)}`;
    expect(duplicateKeyPath(deep)).toEqual([...Array(depth).fill("a"), "b"]);
    expect(duplicateKeyPath(`${"[".repeat(depth)}${"]".repeat(depth)}`)).toBeUndefined();
  });
});

describe("duplicateKeyProblem", () => {
  it("names a short path whole", () => {
    expect(duplicateKeyProblem(["items", 1, "sku"])).toBe(
      "gives items[1].sku twice: give each key once (JSON readers differ on which of the two counts)",
    );
  });

  it("cuts an over-long key between whole characters, never in half an emoji", () => {
    const key = `${"k".repeat(63)}🎉${"k".repeat(100)}`;
    expect(duplicateKeyProblem([key])).toBe(
      `gives ${"k".repeat(63)}… (165 characters) twice: give each key once (JSON readers differ on which of the two counts)`,
    );
  });

  it("cuts an over-long key and a deep path, so the answer does not repeat the body", () => {
    const key = "k".repeat(100_000);
    const long = duplicateKeyProblem(duplicateKeyPath(`{"${key}": 1, "${key}": 2}`) ?? []);
    expect(long).toBe(
      `gives ${"k".repeat(64)}… (100000 characters) twice: give each key once (JSON readers differ on which of the two counts)`,
    );
    const depth = 100_000;
    const deep = `${'{"a":'.repeat(depth)}{"b": 1, "b": 2}${"}".repeat(depth)}`;
    const problem = duplicateKeyProblem(duplicateKeyPath(deep) ?? []);
    expect(problem.length).toBeLessThan(200);
    expect(problem).toMatch(
      /^gives …\.a\.a\.a\.a\.a\.a\.a\.a\.a\.b \(100001 levels deep\) twice: /,
    );
  });
});
