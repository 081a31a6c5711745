import { readFileSync } from "node:fs";
import { parseRules, formatProblem } from "./src/config/load-rules.js";
const base = readFileSync("config/rules.yaml", "utf8");
const cases: Record<string,string> = {
 syntax: "version: 1\ndefaults: {timezone: UTC, currency: GBP\nrules: []\n",
 unknownKey: base.replace("anyItem: { categories: [tech-with-accessories] }", "anyitems: { categories: [tech-with-accessories] }"),
 unknownFar: base.replace("    priority: 70\n", "    priority: 70\n    zzzzzzzz: 1\n"),
 enum: base.replace("channel: sms", "channel: fax"),
 kind: base.replace("kind: check-in", "kind: checkin"),
 duration: base.replace("delay: P14D", "delay: 14 days"),
 durationFrac: base.replace("delay: P14D", "delay: P1.5D"),
 tod: base.replace('start: "08:00"', 'start: "8am"'),
 tod25: base.replace('start: "08:00"', 'start: "25:00"'),
 windowEnd: base.replace('end: "21:00"', 'end: "07:00"'),
 dupRule: base.replace("id: loyal-customer", "id: accessories"),
 dupStep: base.replace("        delay: P3M\n", "        delay: P3M\n      - kind: check-in\n        channel: email\n        template: check-in\n        delay: P4M\n"),
 noSteps: base.replace("  - id: thank-you\n", "  - id: empty\n    when: { stores: [x] }\n  - id: thank-you\n"),
 decimals: base.replace("total: { min: 50 }", "total: { min: 49.999 }"),
 decimalsJPY: base.replace("total: { min: 50 }", 'total: { min: "10.5", currency: JPY }'),
 tz: base.replace("timezone: Europe/London", "timezone: Europe/Londn"),
 cur: base.replace("currency: GBP", "currency: GBX"),
 curRule: base.replace("total: { min: 50 }", "total: { min: 50, currency: EURO }"),
 group: base.replace("  services: [salon", "  Services: [salon"),
 missing: base.replace("        template: accessories-discount\n", ""),
 missingTop: base.replace("version: 1\n", ""),
 several: base.replace("channel: sms", "channel: fax").replace("delay: P14D", "delay: soon").replace("id: loyal-customer", "id: accessories"),
 version2: base.replace("version: 1", "version: 2"),
 holiday: base.replace("2026-12-25,", "2026-13-25,"),
 weekday: base.replace("days: [mon, tue, wed, thu, fri, sat]", "days: [monday]"),
 priority: base.replace("priority: 70", "priority: high"),
 amountNeg: base.replace("total: { min: 50 }", "total: { min: -5 }"),
 amountStr: base.replace("total: { min: 50 }", 'total: { min: "fifty" }'),
 dupKey: base.replace("    priority: 70\n", "    priority: 70\n    priority: 71\n"),
 undefGroup: base.replace("categories: [tech-with-accessories]", "categories: [tech-with-accesories]"),
 prefix: base.replace("codePrefix: THANKS", "codePrefix: thanks"),
 groupKeyBad: base.replace("  services: [salon", "  my_services: [salon"),
};
for (const [name, text] of Object.entries(cases)) {
  const r = parseRules(text, "config/rules.yaml");
  console.log(`--- ${name}`);
  if (r.ok) console.log("OK (valid)"); else for (const p of r.problems) console.log(formatProblem(p));
}
