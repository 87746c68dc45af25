// The order in which `npm test` hands the test files to node --test, which starts them in that
// order, two at a time: the slowest first, so that the run does not end on one long file while
// the other slot has nothing left to start. The list only ranks: every other test file follows in
// name order, so a file missing from it (a new one, a renamed one) still runs.

/** Test files (as named in test/), slowest first: their wall time in full runs on 2 cores (2026-11-30). */
export const SLOWEST_FIRST: readonly string[] = [
  'keeper-drain-and-forget.test.ts',
  'master-recover.test.ts',
  'folders.test.ts',
  'master-restart-during-replication.test.ts',
  'fault-interruptions.test.ts',
  'security-members.test.ts',
  'ls-pages.test.ts',
  'heartbeat-timeout-boundaries.test.ts',
  'master-backup.test.ts',
  'fault-keeper-failures.test.ts',
  'large-file-streams.test.ts',
  'fault-disk-full.test.ts',
  'bad-input.test.ts',
  'corrupt-description-at-keeper-start.test.ts',
  'cli-output-contract.test.ts',
  'harness.test.ts',
  'zones.test.ts',
  'get-to-stdout-never-writes-corrupt-bytes.test.ts',
  'fault-corruption.test.ts',
  'replication-and-repair.test.ts',
]

/** The compiled name of a test file of test/ (x.test.ts runs as x.test.js). */
function compiled(name: string): string {
  return name.replace(/\.ts$/, '.js')
}

/** Every file of `files` (compiled test files) exactly once: those `slowestFirst` ranks first, in its order, then the rest by name. */
export function suiteOrder(files: readonly string[], slowestFirst: readonly string[] = SLOWEST_FIRST): string[] {
  const present = new Set(files)
  const ranked = [...new Set(slowestFirst.map(compiled))].filter((file) => present.has(file))
  const rest = files.filter((file) => !ranked.includes(file)).sort()
  return [...ranked, ...rest]
}

/** Names in `slowestFirst` that are no test file any more: a list to fix, never a file skipped. */
export function staleNames(files: readonly string[], slowestFirst: readonly string[] = SLOWEST_FIRST): string[] {
  const present = new Set(files)
  return slowestFirst.filter((name) => !present.has(compiled(name)))
}
