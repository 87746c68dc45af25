import {Counter, Gauge, type Registry} from 'prom-client'

/** The state of the whole cluster as the master sees it, computed from memory when scraped (Master.census). */
export interface Census {
  files: number
  /** Bytes of the files, each counted once (not per replica). */
  bytes: number
  underReplicated: number
  missing: number
  /** Copies still to make for every under-replicated file to reach its target: the replicator's backlog. */
  copiesNeeded: number
  copiesInFlight: number
  keepersAlive: number
  keepersDead: number
}

/** The master's own metrics (docs/operations.md lists them); counters move where the events happen. */
export class MasterMetrics {
  readonly copiesOrdered: Counter
  readonly copiesFailed: Counter
  readonly trims: Counter
  readonly uploadsCommitted: Counter
  readonly corruptReported: Counter
  #census: Census | undefined

  constructor(
    readonly registry: Registry,
    census: () => Census,
  ) {
    // One census per scrape, shared by its gauges: prom-client collects every metric of a scrape in
    // one turn of the event loop, and the census is dropped once that turn ends. (A census kept for
    // a time instead answered a scrape that came soon after another with the figures of the first.)
    const latest = (): Census => {
      if (!this.#census) {
        this.#census = census()
        setImmediate(() => (this.#census = undefined))
      }

      return this.#census
    }

    const gauge = (name: string, help: string, read: (census: Census) => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read(latest()))
        },
      })
    gauge('dfs_master_files', 'Files in the table', (census) => census.files)
    gauge('dfs_master_stored_bytes', 'Bytes of the files in the table, each file counted once (not per replica)', (census) => census.bytes)
    gauge('dfs_master_files_under_replicated', 'Files with at least one but fewer than the target of counted replicas', (census) => census.underReplicated)
    gauge('dfs_master_files_missing', 'Files with no replica on an alive keeper: unreadable until one comes back', (census) => census.missing)
    gauge('dfs_master_replication_queue', 'Copies still to make for every under-replicated file to reach its target', (census) => census.copiesNeeded)
    gauge('dfs_master_replication_copies_in_flight', 'Copies ordered and not answered yet', (census) => census.copiesInFlight)
    gauge('dfs_master_keepers_alive', 'Keepers heard from within the heartbeat timeout', (census) => census.keepersAlive)
    gauge('dfs_master_keepers_dead', 'Keepers known to the master and not heard from within the heartbeat timeout (until forgotten)', (census) => census.keepersDead)

    const counter = (name: string, help: string) => new Counter({name, help, registers: [registry]})
    this.copiesOrdered = counter('dfs_master_replication_copies_ordered_total', 'Copies the replicator ordered a keeper to make')
    this.copiesFailed = counter('dfs_master_replication_copies_failed_total', 'Copy orders that failed (the keeper refused, timed out or was unreachable)')
    this.trims = counter('dfs_master_replication_trims_total', 'Surplus replicas the replicator ordered deleted')
    this.uploadsCommitted = counter('dfs_master_uploads_committed_total', 'Uploads recorded in the table')
    this.corruptReported = counter('dfs_master_corrupt_replicas_reported_total', 'Corrupt replicas keepers reported (and dropped)')
  }
}
