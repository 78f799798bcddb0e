/**
 * Code-unit order for names (Kubernetes names, rule keys): the same on every
 * node whatever its locale, and cheap. `localeCompare` loads ICU's collator
 * on first use, about 3 MB of RSS (bench/footprint).
 */
export const byCodeUnits = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0
