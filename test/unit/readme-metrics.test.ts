import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { FollowUpMetrics } from "../../src/metrics.js";

it("README's list of metrics names every metric the worker exports, and no other", async () => {
  const readme = readFileSync("README.md", "utf8");
  const start = readme.indexOf("\nMetrics: ");
  expect(start, 'README.md has no "Metrics:" paragraph').toBeGreaterThan(-1);
  const paragraph = readme.slice(start, readme.indexOf("\n\n", start + 1));
  const listed = new Set([...paragraph.matchAll(/`(followups_[a-z_]+)/g)].map((m) => m[1]));
  const exported = (await new FollowUpMetrics().registry.getMetricsAsJSON())
    .map((metric) => metric.name)
    .filter((name) => name.startsWith("followups_"));
  expect([...listed].sort()).toEqual([...new Set(exported)].sort());
});
