import { CommandError, EXIT } from "./io.js";

/**
 * The address of `--email` or `--phone`, refused when it is plainly the other kind: an email
 * address without `@` (a typo) was looked up as a phone number, and "no customer is known"
 * with a hint about phone formats read as "nothing to erase". Not repeated (it may be logged).
 */
export function addressOfFlags(options: {
  readonly email?: string;
  readonly phone?: string;
}): string | undefined {
  if (options.email !== undefined && !options.email.includes("@"))
    throw new CommandError(
      "--email: not an email address (expected name@domain); give a phone number with --phone",
      EXIT.usage,
    );
  if (options.phone?.includes("@"))
    throw new CommandError("--phone: that is an email address; give it with --email", EXIT.usage);
  return options.email ?? options.phone;
}
