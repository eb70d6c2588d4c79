/**
 * Splits a command line into words the way stacker does for `cmd`, `entrypoint` and
 * `full_command` strings (go-shlex in POSIX mode): blanks separate words; single quotes keep
 * everything literally; in double quotes a backslash escapes only \ " $ ` and a newline; outside
 * quotes a backslash escapes the next character and a backslash-newline joins lines. Nothing is
 * expanded: no variables, globs or comments.
 */
export class ShellSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShellSyntaxError';
  }
}

const escapableInDoubleQuotes = new Set(['\\', '"', '$', '`', '\n']);
const blank = /[ \t\r\n]/;

export function splitShellWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let index = 0;
  const next = () => text[index++] as string;
  while (index < text.length) {
    const char = next();
    if (char === "'") {
      const end = text.indexOf("'", index);
      if (end < 0) throw new ShellSyntaxError(`unterminated single quote in ${JSON.stringify(text)}`);
      word += text.slice(index, end);
      index = end + 1;
      inWord = true;
    } else if (char === '"') {
      inWord = true;
      for (;;) {
        if (index >= text.length) throw new ShellSyntaxError(`unterminated double quote in ${JSON.stringify(text)}`);
        const inner = next();
        if (inner === '"') break;
        if (inner === '\\' && index < text.length && escapableInDoubleQuotes.has(text[index] as string)) {
          const escaped = next();
          if (escaped !== '\n') word += escaped;
        } else {
          word += inner;
        }
      }
    } else if (char === '\\') {
      if (index >= text.length) throw new ShellSyntaxError(`a backslash ends ${JSON.stringify(text)} with nothing to escape`);
      const escaped = next();
      if (escaped !== '\n') {
        word += escaped;
        inWord = true;
      }
    } else if (blank.test(char)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += char;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}
