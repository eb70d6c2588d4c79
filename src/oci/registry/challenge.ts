/** One challenge of a `WWW-Authenticate` header (RFC 7235): a scheme and its parameters. */
export interface Challenge {
  /** Lower case: `bearer`, `basic`, ... */
  scheme: string;
  params: Record<string, string>;
}

const tokenPattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

/**
 * Parses a `WWW-Authenticate` header value, which may hold several challenges
 * (`Basic realm="r", Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`).
 * Parameter names are lower-cased; quoted values are unescaped.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let rest = header.trim();
  let current: Challenge | undefined;
  while (rest.length > 0) {
    rest = rest.replace(/^[\s,]+/, '');
    const token = tokenPattern.exec(rest)?.[0];
    if (token === undefined) break;
    const afterToken = rest.slice(token.length).replace(/^\s+/, '');
    if (current !== undefined && afterToken.startsWith('=') && !afterToken.startsWith('==')) {
      const { value, remaining } = readValue(afterToken.slice(1).replace(/^\s+/, ''));
      current.params[token.toLowerCase()] = value;
      rest = remaining;
    } else {
      current = { scheme: token.toLowerCase(), params: {} };
      challenges.push(current);
      rest = afterToken;
      // token68 form (`Basic abc==`): not used by registries; skip it.
      const token68 = /^[A-Za-z0-9\-._~+/]+=*(?=\s*(,|$))/.exec(rest);
      if (token68 !== null && !rest.slice(token68[0].length).trimStart().startsWith('=')) rest = rest.slice(token68[0].length);
    }
  }
  return challenges;
}

function readValue(text: string): { value: string; remaining: string } {
  if (!text.startsWith('"')) {
    const value = tokenPattern.exec(text)?.[0] ?? '';
    return { value, remaining: text.slice(value.length) };
  }
  let value = '';
  for (let index = 1; index < text.length; index++) {
    const char = text[index] as string;
    if (char === '\\' && index + 1 < text.length) {
      value += text[++index];
    } else if (char === '"') {
      return { value, remaining: text.slice(index + 1) };
    } else {
      value += char;
    }
  }
  return { value, remaining: '' };
}
