// What every scenario gets: the options, the recorder, the temp root, and fresh clusters.

import {mkdir} from 'node:fs/promises'
import {join} from 'node:path'

import {Cluster, type ClusterOptions} from './cluster.js'
import type {Recorder} from './report.js'

export const SCENARIOS = ['startup', 'large', 'memory', 'small', 'repair', 'auth', 'scale'] as const
export type ScenarioName = (typeof SCENARIOS)[number]

export interface BenchOptions {
  /** Size of the large file, bytes. */
  size: number
  /** The smaller size the memory scenario compares peak RSS at. */
  memorySize: number
  smallCount: number
  smallSize: number
  repairCount: number
  repairSize: number
  /** Small files, and the size of the mid-size file, of the auth-cost scenario. */
  authCount: number
  midSize: number
  /** Tiny files in the table of the scale scenario, and its runs (loading 100,000 files takes minutes: one by default). */
  scaleCount: number
  scaleRuns: number
  /** Every cluster without a key (loopback only, nothing checked); the auth scenario compares both anyway. */
  noKey: boolean
  runs: number
  /** Samples of each start-up command per run. */
  startupSamples: number
  json: boolean
  jsonFile?: string
  short: boolean
  /** Report against the targets (off in --short: tiny sizes say nothing about them). */
  enforceTargets: boolean
  only: Set<ScenarioName>
  /** Directory for --cpu-prof profiles of the master, keepers and clients, when profiling. */
  cpuProf?: string
  /** The temp root of this bench run. */
  root: string
}

export class Context {
  #clusters = 0

  constructor(
    readonly options: BenchOptions,
    readonly recorder: Recorder,
  ) {}

  get root(): string {
    return this.options.root
  }

  /** Progress for people, on stderr (stdout is kept for the table or the JSON). */
  log(message: string): void {
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`)
  }

  /** Node arguments for a role's processes: --cpu-prof into DIR/ROLE when profiling. */
  nodeArgs(role: 'master' | 'keeper' | 'client'): string[] {
    return this.options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', join(this.options.cpuProf, role)] : []
  }

  /** A scratch directory under the temp root. */
  async dir(name: string): Promise<string> {
    const path = join(this.root, name)
    await mkdir(path, {recursive: true})
    return path
  }

  /** A fresh master + 4 keepers with their own data directories; with a cluster key unless --no-key. */
  async cluster(overrides: Partial<ClusterOptions> = {}): Promise<Cluster> {
    const dir = join(this.root, `cluster-${++this.#clusters}`)
    return Cluster.start({
      dir,
      keepers: 4,
      replicas: 3,
      heartbeatTimeout: '3s',
      heartbeatInterval: '1s',
      replicationInterval: '10s',
      nodeArgs: {master: this.nodeArgs('master'), keeper: this.nodeArgs('keeper')},
      auth: !this.options.noKey,
      ...overrides,
    })
  }
}
