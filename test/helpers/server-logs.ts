import type {ServerProcess} from './cluster.js'

/**
 * What a server of ours logged, as text to search: the `msg` of each JSON log line (quotes in it
 * unescaped, so a test can look for `copied "a.mp4"`), any other line as it is.
 */
export function logMessages(server: ServerProcess): string[] {
  return server.logs.map((line) => {
    if (!line.startsWith('{')) return line
    try {
      const entry = JSON.parse(line) as {msg?: unknown}
      return typeof entry.msg === 'string' ? entry.msg : line
    } catch {
      return line
    }
  })
}

/**
 * The copies a master's log lines tell of: the replicator logs one line per order it got answered,
 * `copied "NAME" from SOURCE to DESTINATION` for one copy, `copied N files to DESTINATION, …` for several.
 */
export function copiesLogged(lines: string[]): number {
  let copies = 0
  for (const line of lines) {
    if (line.startsWith('copied "')) copies++
    const several = /^copied (\d+) files to /.exec(line)
    if (several) copies += Number(several[1])
  }

  return copies
}
