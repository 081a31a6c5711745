import { VOICE_UNAVAILABLE } from "../channels/channels-from-env.js";
import { formatProblem } from "../config/config-files.js";
import { loadConfig } from "../config/load-config.js";
import { loadRules } from "../config/load-rules.js";
import type { RuleSet } from "../domain/rules.js";
import { stepIdOf } from "../domain/step-ref.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";

/**
 * `followups check`: validates the rules and renders every template against samples, reporting
 * every problem at once.
 */
export async function runCheck(configDir: string, io: CommandIo): Promise<number> {
  const result = await loadConfig(configDir);
  if (!result.ok) {
    for (const problem of result.problems) io.err(`${formatProblem(problem)}\n`);
    const count = result.problems.length;
    io.err(`${count} problem${count === 1 ? "" : "s"} found.\n`);
    return EXIT.invalid;
  }
  const { rules, templates, version } = result.config;
  const steps = rules.rules.reduce((sum, rule) => sum + rule.steps.length, 0);
  const templateCount = templates.templateIds.length;
  io.out(
    `${configDir}: valid, ${rules.rules.length} rules, ${steps} steps, ${templateCount} templates, version ${version}\n`,
  );
  const voiceSteps = rules.rules.flatMap((rule) =>
    rule.steps.filter((step) => step.channel === "voice").map((step) => stepIdOf(rule, step)),
  );
  if (voiceSteps.length > 0) {
    io.err(
      `note: voice steps (${voiceSteps.join(", ")}) place calls through Twilio; without Twilio they are skipped ("${VOICE_UNAVAILABLE}") while SMTP or Twilio sends the other channels, and written to the outbox when every channel is\n`,
    );
  }
  return EXIT.ok;
}

/** Loads the rules for a command that needs them, or fails with every problem listed. */
export async function loadRulesForCommand(configDir: string): Promise<RuleSet> {
  const result = await loadRules(configDir);
  if (result.ok) return result.rules;
  const listing = result.problems.map(formatProblem).join("\n");
  throw new CommandError(`${listing}\nthe rules are invalid; run \`followups check\` for details`);
}
