import { describe, expect, it } from "vitest";
import { isolatedProblems, renderConsolePage } from "../../src/console/console-views.js";

describe("the plan preview's problems", () => {
  it("isolate each path and each value quoted, a quote inside a value included", async () => {
    const text = isolatedProblems([
      { path: "customer.\u202eשם", message: "the key holds half a character" },
      { path: "customer.phone", message: 'expected a phone number, got "\u202ea\\"b": check it' },
      { path: "", message: "expected one event" },
    ]);
    const html = await renderConsolePage("plan", { title: "Plan preview", error: text });
    const shown = /<pre class="error"[^>]*>([\s\S]*?)<\/pre>/.exec(html)?.[1];
    expect(shown).toBe(
      [
        "<bdi>customer.\u202eשם</bdi>: the key holds half a character",
        "<bdi>customer.phone</bdi>: expected a phone number, got <bdi>&#34;\u202ea\\&#34;b&#34;</bdi>: check it",
        "(event): expected one event",
      ].join("\n"),
    );
  });
});
