// The chaos run's record: a timeline of every operation and fault (so a failure can be read
// against the servers' logs), counters, and the findings (violations fail the run, warnings do not).

export interface Finding {
  kind: string
  message: string
  /** File names the finding is about: their timeline and log lines are shown as evidence. */
  names?: string[]
  /** Ids (file ids, keeper ids) to look for in the servers' logs. */
  ids?: string[]
  details?: string
}

export interface OpCounts {
  ok: number
  /** The master said there is no file of that name (get and rm only). */
  absent: number
  failed: number
}

export class Journal {
  readonly started = Date.now()
  /** The same instant on the monotonic clock the model's intervals use. */
  readonly startedMono = performance.now()
  readonly timeline: string[] = []
  readonly violations: Finding[] = []
  readonly warnings: Finding[] = []
  readonly ops: Record<'put' | 'get' | 'rm', OpCounts> = {put: {ok: 0, absent: 0, failed: 0}, get: {ok: 0, absent: 0, failed: 0}, rm: {ok: 0, absent: 0, failed: 0}}
  /** Failure messages (normalized) by operation kind, with counts. */
  readonly failures: Record<string, Map<string, number>> = {put: new Map(), get: new Map(), rm: new Map()}
  readonly chaos = {
    keeperKills: 0,
    keeperTerms: 0,
    keeperRestarts: 0,
    masterKills: 0,
    restartFailures: 0,
    /** Replicas whose bytes were flipped. */
    corruptions: 0,
    diskFills: 0,
    /** Gets that failed on a checksum mismatch (they did not hand out the bytes: allowed). */
    getIntegrityErrors: 0,
  }
  putWaitTimeouts = 0
  /** Set on Ctrl-C: commands killed on the way out are not findings. */
  closed = false
  bytesPut = 0
  bytesGot = 0

  constructor(private readonly echo?: (line: string) => void) {}

  /** Seconds since the start, and the wall clock (to match the servers' log times). */
  stamp(): string {
    const now = Date.now()
    return `+${((now - this.started) / 1000).toFixed(3).padStart(8)}s ${new Date(now).toISOString().slice(11, 23)}`
  }

  event(source: string, message: string, echo = false): void {
    const line = `${this.stamp()} ${source.padEnd(6)} ${message}`
    this.timeline.push(line)
    if (echo) this.echo?.(line)
  }

  violation(finding: Finding): void {
    if (this.closed) return
    this.violations.push(finding)
    this.event('CHECK', `VIOLATION ${finding.kind}: ${finding.message}`, true)
  }

  warning(finding: Finding): void {
    if (this.closed) return
    this.warnings.push(finding)
    this.event('CHECK', `warning ${finding.kind}: ${finding.message}`)
  }

  failure(kind: 'put' | 'get' | 'rm', normalized: string): void {
    const map = this.failures[kind]!
    map.set(normalized, (map.get(normalized) ?? 0) + 1)
  }

  /** Timeline lines that mention any of `needles`. */
  timelineFor(needles: string[]): string[] {
    return this.timeline.filter((line) => needles.some((needle) => line.includes(needle)))
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}
