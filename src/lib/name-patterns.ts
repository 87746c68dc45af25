// Which stored names a client command means: a prefix (`videos/`), or a glob (`videos/*.mp4`). The
// master filters by the literal prefix (an indexed range of its table); the glob is applied on top.

/** What `dfs ls PATTERN` (and du, rm -r, get -r) selects: the master's prefix, and a test of each name it lists. */
export interface NameSelection {
  /** Every selected name starts with it: the part of the pattern before its first wildcard. */
  prefix: string
  matches(name: string): boolean
}

const WILDCARD = /[*?]/

/** Whether a pattern has a wildcard (`*`, `**` or `?`), else it is a plain prefix. */
export function isGlob(pattern: string): boolean {
  return WILDCARD.test(pattern)
}

/**
 * A plain pattern selects every name it starts (as `aws s3 ls` does); a glob selects the names it
 * matches whole, where `*` and `?` stay within one folder and `**` crosses folders.
 */
export function selectNames(pattern = ''): NameSelection {
  if (!isGlob(pattern)) return {prefix: pattern, matches: (name) => name.startsWith(pattern)}
  const prefix = pattern.slice(0, pattern.search(WILDCARD))
  const regex = globRegex(pattern)
  return {prefix, matches: (name) => regex.test(name)}
}

function globRegex(pattern: string): RegExp {
  let source = ''
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!
    if (char === '*' && pattern[i + 1] === '*') {
      // `a/**/b` also matches `a/b`: the folders between may be none.
      if (pattern[i + 2] === '/') {
        source += '(?:.*/)?'
        i += 2
      } else {
        source += '.*'
        i += 1
      }
    } else if (char === '*') source += '[^/]*'
    else if (char === '?') source += '[^/]'
    else source += char.replaceAll(/[.+^${}()|[\]\\]/g, '\\$&')
  }

  return new RegExp(`^${source}$`, 'su')
}

/**
 * A folder's prefix: `videos` and `videos/` both mean `videos/`, so that `rm --recursive videos`
 * never takes `videos.mp4` along. The empty folder is every name.
 */
export function folderPrefix(folder: string): string {
  return folder === '' || folder.endsWith('/') ? folder : `${folder}/`
}

/**
 * The least string above every string that starts with `prefix`, in the code-point order of the
 * master's table (SQLite compares UTF-8 bytes, which sort as code points): `name >= prefix AND
 * name < bound` is the prefix, as an indexed range. Undefined when there is no such string.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const chars = [...prefix]
  while (chars.length > 0) {
    const last = chars.pop()!.codePointAt(0)!
    if (last < 0x10_ffff) {
      // The surrogate code points are no characters: the one after U+D7FF is U+E000.
      const next = last === 0xd7_ff ? 0xe0_00 : last + 1
      return chars.join('') + String.fromCodePoint(next)
    }
  }

  return undefined
}
