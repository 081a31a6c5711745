/**
 * A pure function of a name, remembered per name: zone and locale checks, currency digits and
 * money formatters repeat across events, and building them (Intl formatters, parsing) costs more
 * than the rest of the work. Bounded, so odd inputs from events cannot grow it without limit.
 */
export function remembered<T>(compute: (name: string) => T, limit = 10_000): (name: string) => T {
  const answers = new Map<string, T>();
  return (name) => {
    if (answers.has(name)) return answers.get(name) as T;
    const answer = compute(name);
    if (answers.size < limit) answers.set(name, answer);
    return answer;
  };
}
