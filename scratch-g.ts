import { parseRules, formatProblem } from "./src/config/load-rules.js";
const base = `version: 1
defaults:
  timezone: Europe/London
  currency: GBP
groups:
  big-ticket: [televisions, laptops]
sendWindows:
  email: { start: "08:00", end: "21:00" }
rules:
  - id: big-ticket
    when:
      anyItem: { categories: [big-ticket] }
    steps:
      - kind: thank-you
        channel: email
        template: thank-you
        delay: PT1H
      - kind: check-in
        channel: sms
        template: check-in
        delay: P3M
  - id: over-fifty
    when:
      total: { min: 50 }
    steps:
      - kind: thank-you
        channel: email
        template: thank-you
        delay: PT1H
`;
const lines = base.split("\n");
const v = (n: number, text: string | null) => { const l = [...lines]; if (text === null) l.splice(n-1, 1); else l[n-1] = text; return l.join("\n"); };
const cases: Record<string,string> = {
  ok: base,
  tabs: v(15, "       channel: email"),
  flow: v(8, '  email: { start: "08:00", end: "21:00"'),
  colon: v(17, "        delay: PT1H: soon"),
  sendWindowTop: v(7, "sendWindow:"),
  delayTop: base.replace("version: 1\n", "version: 1\ndelay: PT1H\n"),
  stepsMissing: v(25, "    final: false").split("\n").slice(0, 25).join("\n") + "\n",
  missingTemplate: v(16, null),
  missingKind: v(14, "      - channel: email").replace("        channel: email\n        template: thank-you\n        delay: PT1H\n      - kind: check-in", "        template: thank-you\n        delay: PT1H\n      - kind: check-in"),
  delayNum: v(21, "        delay: 14"),
  finalYes: v(22, "  - id: over-fifty\n    final: yes"),
  emptyRules: lines.slice(0, 8).join("\n") + "\nrules: []\n",
  noRules: lines.slice(0, 8).join("\n") + "\n",
  empty: "",
  list: "- 1\n- 2\n",
};
for (const [name, text] of Object.entries(cases)) {
  const r = parseRules(text, "rules.yaml");
  console.log(`--- ${name}`);
  if (r.ok) console.log("OK (valid)"); else for (const p of r.problems) console.log(formatProblem(p));
}
