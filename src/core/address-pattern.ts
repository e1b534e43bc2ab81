/**
 * @module Address patterns, as replay's --filter and serve's --faults rules write them: shell-style
 * ("*" any run, "?" one character), "@example.org" for every address at that domain, "<>" for the
 * null sender.
 * Rule: a pattern matches the whole text and ignores case; nothing else is special.
 */

/** A shell-style pattern ("*" any run, "?" one character), matched whole and without regard to case. */
export function globPattern(text: string): RegExp {
  const body = text.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/** An address pattern: "@example.org" means every address at that domain, "<>" the null sender (""). */
export function addressPattern(text: string): RegExp {
  if (text === '<>') return /^$/;
  return globPattern(text.startsWith('@') ? `*${text}` : text);
}
