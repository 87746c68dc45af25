import {statfs} from 'node:fs/promises'

import {Counter, Gauge, Histogram, type Registry} from 'prom-client'

import {DURATION_BUCKETS, timeFsyncs} from '../../lib/metrics.js'
import type {Keeper} from './keeper.js'

/** A keeper's own metrics (docs/operations.md lists them); counters and histograms move where the events happen. */
export class KeeperMetrics {
  /** Seconds from an upload's first byte to the master's answer to its commit; `result`: ok or failed. */
  readonly uploads: Histogram<'result'>
  /** Seconds a GET of a file took to send; `result`: ok or aborted (the reader went away). */
  readonly downloads: Histogram<'result'>
  /** Seconds a copy the master ordered took to pull and store; `result`: ok or failed. */
  readonly copies: Histogram<'result'>
  readonly scrubPasses: Counter
  readonly scrubbedFiles: Counter
  readonly scrubbedBytes: Counter
  readonly scrubProgress: Gauge
  readonly corruptFound: Counter
  /** Batch reads (POST /files/read) answered. */
  readonly batchReads: Counter
  /** Files of batch reads: `result` served (its bytes sent whole) or refused (an error frame). */
  readonly batchReadFiles: Counter<'result'>
  readonly batchCopies: Counter<'result'>
  readonly #stopTimingFsyncs: () => void

  constructor(
    readonly registry: Registry,
    keeper: Keeper,
  ) {
    const histogram = (name: string, help: string) => new Histogram({name, help, labelNames: ['result'] as const, buckets: DURATION_BUCKETS, registers: [registry]})
    this.uploads = histogram('dfs_keeper_upload_duration_seconds', 'Seconds an upload took, from its first byte to the master recording it')
    this.downloads = histogram('dfs_keeper_download_duration_seconds', 'Seconds a GET of a file (whole or a range) took to send')
    this.copies = histogram('dfs_keeper_copy_duration_seconds', 'Seconds a copy the master ordered took, pulled from another keeper and stored')
    this.#stopTimingFsyncs = timeFsyncs(registry, 'dfs_keeper_fsync_duration_seconds')

    const gauge = (name: string, help: string, read: () => number | Promise<number>) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        async collect() {
          this.set(await read())
        },
      })
    gauge('dfs_keeper_files', 'Files stored and published', () => keeper.store.fileCount)
    gauge('dfs_keeper_stored_bytes', 'Bytes of the files stored', () => keeper.store.storedBytes)
    gauge('dfs_keeper_free_bytes', 'Bytes free for new files on the data dir (the disk, less what uploads under way were promised)', () => keeper.store.freeBytes())
    gauge('dfs_keeper_disk_size_bytes', 'Size of the file system holding the data dir', async () => {
      const disk = await statfs(keeper.store.dataDir)
      return Number(disk.blocks) * Number(disk.bsize)
    })
    gauge('dfs_keeper_active_transfers', 'Uploads, downloads and copies under way', () => keeper.activeTransfers)

    const counter = (name: string, help: string) => new Counter({name, help, registers: [registry]})
    this.scrubPasses = counter('dfs_keeper_scrub_passes_total', 'Passes of the scrubber over every stored file, completed')
    this.scrubbedFiles = counter('dfs_keeper_scrubbed_files_total', 'Files the scrubber re-hashed')
    this.scrubbedBytes = counter('dfs_keeper_scrubbed_bytes_total', 'Bytes the scrubber re-hashed')
    this.scrubProgress = new Gauge({name: 'dfs_keeper_scrub_progress_ratio', help: 'Share of the bytes of the current scrub pass re-hashed so far (1 between passes)', registers: [registry]})
    this.scrubProgress.set(1)
    this.batchReads = counter('dfs_keeper_batch_reads_total', 'Batch reads (POST /files/read) answered, whole or cut short')
    this.batchReadFiles = new Counter({name: 'dfs_keeper_batch_read_files_total', help: 'Files named in batch reads, by result: served, or refused with an error frame', labelNames: ['result'] as const, registers: [registry]})
    this.batchCopies = new Counter({name: 'dfs_keeper_batch_copies_total', help: 'Copies this keeper asked of batch reads, by result: stored from their frame, or pulled alone after', labelNames: ['result'] as const, registers: [registry]})
    this.corruptFound = counter('dfs_keeper_corrupt_replicas_total', 'Replicas found corrupt when re-hashed (by the scrubber or on the master\'s order) and dropped')
  }

  stop(): void {
    this.#stopTimingFsyncs()
  }
}
