// `npm run bench:net`: the large-file figures on hosts with links of their own. The master, 4
// keepers and the client each run in a network namespace (test/net/lab.ts), every keeper's link
// shaped with tbf to --rate each way; the same figures on loopback beside them. Measured: put
// --wait all, get from 3 replicas and with --sources 1 (goal: ≥ 2.5× faster from 3), and the
// repair after a holder is SIGKILLed (until its file has 3 alive replicas again). No delay is
// added: this kernel has no netem, so only rates are shaped.
//
//   node dist/bench/net.js [--size 256MiB] [--rate 200mbit] [--short] [--tmp DIR]

import {mkdtemp, rm} from 'node:fs/promises'
import {loadavg, tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {performance} from 'node:perf_hooks'
import {parseArgs} from 'node:util'

import {NetLab} from '../test/net/lab.js'
import {Cluster} from './cluster.js'
import {formatSize, generateFile, MiB, parseSize, verifyFile, type DataFile} from './data.js'
import {installCleanupHandlers, runDfs, trackTempDir} from './processes.js'
import {formatReport, Recorder} from './report.js'

const USAGE = `usage: node dist/bench/net.js [options]   (npm run bench:net -- [options]; needs root)

  --size SIZE   file size (default 256MiB; --short: 32MiB)
  --rate RATE   each keeper's link, tc syntax (default 200mbit)
  --short       CI mode: a small file, the goal shown but not checked
  --tmp DIR     where the temp directory goes (default: the system temp dir)
  -h, --help    this help`

const KEEPERS = ['k1', 'k2', 'k3', 'k4']
const MODES = [
  {id: 'loopback', section: 'loopback (127.0.0.1, one host)'},
  {id: 'shaped', section: ''},
] as const

async function main(): Promise<void> {
  const {values} = parseArgs({options: {size: {type: 'string'}, rate: {type: 'string', default: '200mbit'}, short: {type: 'boolean', default: false}, tmp: {type: 'string'}, help: {type: 'boolean', short: 'h'}}})
  if (values.help) return void console.log(USAGE)
  const unavailable = NetLab.unavailable()
  if (unavailable) throw new Error(`bench:net cannot run here: ${unavailable}`)
  installCleanupHandlers()
  const size = values.size ? parseSize(values.size) : values.short ? 32 * MiB : 256 * MiB
  const rate = values.rate!
  const root = trackTempDir(await mkdtemp(join(resolve(values.tmp ?? tmpdir()), 'dfs-bench-net-')))
  const log = (message: string) => process.stderr.write(`[bench:net ${new Date().toISOString().slice(11, 19)}] ${message}\n`)
  const loadBefore = loadavg()

  const recorder = new Recorder()
  recorder.evaluateTargets = !values.short
  for (const mode of MODES) {
    const section = mode.id === 'shaped' ? `namespaces, each keeper's link ${rate} (tbf, no delay)` : mode.section
    recorder.define({id: `${mode.id}-put`, section, label: `put --wait all (${formatSize(size)})`, unit: 's'})
    recorder.define({id: `${mode.id}-get-one`, section, label: 'get --sources 1', unit: 's', short: '--sources 1'})
    recorder.define({
      id: `${mode.id}-get`,
      section,
      label: 'get (3 replicas)',
      unit: 's',
      baseline: `${mode.id}-get-one`,
      ...(mode.id === 'shaped' ? {target: {ratioMax: 0.4, text: '≥ 2.5× faster than --sources 1'}} : {}),
    })
    recorder.define({id: `${mode.id}-repair`, section, label: 'repair after a holder is SIGKILLed', unit: 's'})
  }

  log(`generating a ${formatSize(size)} file`)
  const file = await generateFile(join(root, 'large.bin'), size)
  for (const mode of MODES) {
    log(`${mode.id}: starting`)
    await measure(mode.id, file, root, rate, recorder, log)
  }

  const loadAfter = loadavg()
  console.log(formatReport(recorder.rows(), 1))
  console.log(`load average (1, 5, 15 min): before ${loadBefore.map((load) => load.toFixed(2)).join(', ')}; after ${loadAfter.map((load) => load.toFixed(2)).join(', ')}`)
  await rm(root, {recursive: true, force: true})
}

async function measure(mode: 'loopback' | 'shaped', file: DataFile, root: string, rate: string, recorder: Recorder, log: (message: string) => void): Promise<void> {
  const lab = mode === 'shaped' ? await NetLab.create(['master', ...KEEPERS, 'client']) : undefined
  let cluster: Cluster | undefined
  try {
    if (lab) for (const keeper of KEEPERS) await lab.shape(keeper, rate)
    cluster = await Cluster.start({
      dir: join(root, `cluster-${mode}`),
      keepers: KEEPERS.length,
      replicas: 3,
      heartbeatTimeout: '1s',
      heartbeatInterval: '200ms',
      replicationInterval: '1s',
      placement: lab?.placement('master', KEEPERS, 'client'),
    })
    const prefix = lab?.host('client').prefix
    // A copy moves at least 1 MB/s, or the bench gives up.
    const timeoutMs = 60_000 + file.size / 1000
    const dfs = (args: string[]) => runDfs([...args, '--master', cluster!.masterUrl], {prefix, timeoutMs})

    recorder.add(`${mode}-put`, (await dfs(['put', file.path, '--wait', 'all'])).ms / 1000)
    log(`${mode}: put done`)
    for (const [row, extra] of [[`${mode}-get`, []], [`${mode}-get-one`, ['--sources', '1']]] as const) {
      const out = join(root, `${row}.bin`)
      recorder.add(row, (await dfs(['get', file.name, '-o', out, ...extra])).ms / 1000)
      await verifyFile(out, file, row)
      await rm(out, {force: true})
    }

    log(`${mode}: gets done`)
    const holder = (await cluster.fileInfo(file.name))!.replicas.find((replica) => replica.alive)!
    const victim = cluster.keepers.find((keeper) => keeper.id === holder.keeper)!
    const killedAt = performance.now()
    cluster.killKeeper(victim)
    // Dead first, then back at 3: the count drops only once the master has noticed.
    await cluster.until(async () => (await cluster!.status()).some((keeper) => keeper.id === victim.id && !keeper.alive), 'the killed keeper declared dead', 30_000)
    const repairedAt = await cluster.untilReplicas(file.name, 3, timeoutMs)
    recorder.add(`${mode}-repair`, (repairedAt - killedAt) / 1000)
    log(`${mode}: repair done`)
  } finally {
    await cluster?.stop()
    await lab?.destroy()
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:net failed: ${(error as Error).message}\n`)
  process.exitCode = 1
})

