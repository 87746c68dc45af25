// `npm run chaos`: a seeded random workload of puts, gets and rms through the real CLI against a
// real master and keepers, while keepers (and once in a while the master) are killed and
// restarted, replicas are damaged and a keeper's disk fills up. At the end every fault is undone,
// the cluster settles, and the invariant is checked (see invariant.ts and model.ts).
//
//   node dist/test/chaos/run.js [--seed N] [--duration S] [--short] [--shared-names] [--json] …
//
// The seed is printed at the start and at the end; `--seed N` replays the same scripts and the
// same fault plan (both drawn before anything runs), though not the exact timing of processes.
// Exits 0 when the invariant holds, 1 when it does not (with the evidence and a directory of logs).

import {randomInt} from 'node:crypto'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {TestCluster, tempDir} from '../helpers/cluster.js'
import {ChaosMonkey, describeFault, planFaults} from './chaos.js'
import {mountTmpfs, unmountSmallDisk} from './disk-faults.js'
import {verifyInvariant, type VerifyFigures} from './invariant.js'
import {Journal, formatBytes, type Finding} from './journal.js'
import {Model} from './model.js'
import {Rng} from './prng.js'
import {killRunningCommands} from './proc.js'
import {drawScript, drawSharedNames, type ScriptedOp} from './script.js'
import {Worker} from './workload.js'

const USAGE = `usage: node dist/test/chaos/run.js [options]
  --seed N          seed of every random decision (default: random; printed so a run can be replayed)
  --duration S      seconds of workload under faults (default 60; 30 with --short)
  --keepers N       keepers in the cluster (default 5)
  --replicas N      replicas per file (default 3)
  --workers N       concurrent workload workers (default 3)
  --shared-names    workers also draw names from one small common pool, so that their puts, gets
                    and rms of one name race (on with --short)
  --pool N          names in the common pool (default 6; 4 with --short)
  --master-kills N  times the master is killed and restarted (default 1 per minute, at least 1)
  --corruptions N   replicas damaged (bytes flipped) during the run (default 1 per 10 s, at least 3)
  --disk-fills N    times the small disk of one keeper is filled up (default 1 per 20 s, at least 2;
                    that keeper's data dir is a tmpfs: needs root, else these faults are skipped,
                    and under env CI that fails the run)
  --short           a CI-sized run: 30 s, smaller files, shared names
  --json            print the final report as JSON on stdout (progress goes to stderr)
  --keep-logs       keep the servers' logs even when the run passes`

interface Config {
  seed: number
  durationMs: number
  keepers: number
  replicas: number
  workers: number
  sharedNames: boolean
  pool: number
  masterKills: number
  corruptions: number
  diskFills: number
  short: boolean
  json: boolean
  keepLogs: boolean
  maxBytes: number
  killGapMs: [number, number]
  downMs: [number, number]
  settleDeadlineMs: number
  commandTimeoutMs: number
}

function parseConfig(): Config {
  const {values} = parseArgs({
    options: {
      seed: {type: 'string'},
      duration: {type: 'string'},
      keepers: {type: 'string'},
      replicas: {type: 'string'},
      workers: {type: 'string'},
      'shared-names': {type: 'boolean', default: false},
      pool: {type: 'string'},
      'master-kills': {type: 'string'},
      corruptions: {type: 'string'},
      'disk-fills': {type: 'string'},
      short: {type: 'boolean', default: false},
      json: {type: 'boolean', default: false},
      'keep-logs': {type: 'boolean', default: false},
      help: {type: 'boolean', short: 'h', default: false},
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  }

  const integer = (name: string, value: string | undefined, fallback: number, min: number): number => {
    if (value === undefined) return fallback
    const parsed = Number(value)
    if (!Number.isInteger(parsed) || parsed < min) {
      process.stderr.write(`--${name} takes an integer of at least ${min}, not "${value}"\n${USAGE}\n`)
      process.exit(2)
    }

    return parsed
  }

  const short = values.short ?? false
  const seed = integer('seed', values.seed, randomInt(1, 2 ** 31 - 1), 0)
  const duration = integer('duration', values.duration, short ? 30 : 60, 1)
  const keepers = integer('keepers', values.keepers, 5, 2)
  const replicas = integer('replicas', values.replicas, 3, 1)
  return {
    seed,
    durationMs: duration * 1000,
    keepers,
    replicas,
    workers: integer('workers', values.workers, 3, 1),
    sharedNames: short || (values['shared-names'] ?? false),
    pool: integer('pool', values.pool, short ? 4 : 6, 1),
    masterKills: integer('master-kills', values['master-kills'], Math.max(1, Math.floor(duration / 60)), 0),
    corruptions: integer('corruptions', values.corruptions, Math.max(3, Math.floor(duration / 10)), 0),
    diskFills: integer('disk-fills', values['disk-fills'], Math.max(2, Math.floor(duration / 20)), 0),
    short,
    json: values.json ?? false,
    keepLogs: values['keep-logs'] ?? false,
    maxBytes: short ? 2 * 1024 * 1024 : 6 * 1024 * 1024,
    killGapMs: short ? [1000, 3000] : [1000, 4000],
    downMs: short ? [500, 5000] : [500, 8000],
    settleDeadlineMs: short ? 60_000 : 120_000,
    commandTimeoutMs: 90_000,
  }
}

const config = parseConfig()
// Never fewer keepers running than this, so that most files keep a replica on a running keeper.
const MIN_ALIVE = 2
// With --json, stdout carries only the report.
const say = (line: string) => (config.json ? process.stderr : process.stdout).write(line + '\n')
const journal = new Journal(say)
const replay = replayCommand()

/** The command that runs this again with the same seed and options. */
function replayCommand(): string {
  const rest: string[] = []
  const argv = process.argv.slice(2)
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    if (arg === '--seed') index++
    else if (!arg.startsWith('--seed=') && arg !== '--json') rest.push(arg)
  }

  return ['npm run chaos --', '--seed', String(config.seed), ...rest].join(' ')
}

let cluster: TestCluster | undefined
let monkey: ChaosMonkey | undefined
let model: Model | undefined
let scripts: ScriptedOp[][] = []
let workDir: string | undefined
let smallDisk: string | undefined
let cleaning: Promise<void> | undefined

async function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    killRunningCommands()
    await cluster?.stop().catch(() => {})
    if (smallDisk) {
      try {
        unmountSmallDisk(smallDisk)
      } catch (error) {
        say(`could not unmount the small disk at ${smallDisk}: ${String(error)}`)
      }
    }

    if (workDir) await rm(workDir, {recursive: true, force: true}).catch(() => {})
  })()
  return cleaning
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`\ninterrupted by ${signal}: stopping every process (seed ${config.seed})`)
    journal.closed = true
    void cleanUp().finally(() => process.exit(130))
  })
}

/**
 * Mounts the small disk of the last keeper. Where that is not allowed the disk faults are left out
 * with a clear message; under CI a skipped fault is a failure, not a pass.
 */
async function prepareSmallDisk(work: string): Promise<string | undefined> {
  if (config.diskFills === 0) return undefined
  const mountPoint = join(work, 'small-disk')
  await mkdir(mountPoint)
  // Room for a few files, so that it also fills up on its own as files are placed on it.
  const why = mountTmpfs(mountPoint, 8 * config.maxBytes)
  if (why === undefined) {
    smallDisk = mountPoint
    return mountPoint
  }

  const message = `cannot mount a small tmpfs for the full-disk faults (${why}); they are skipped`
  if (process.env.CI) journal.violation({kind: 'fault-skipped', message: `${message}, and under CI that is a failure`})
  else say(`SKIPPED: ${message}`)
  return undefined
}

async function main(): Promise<number> {
  say(`dfs chaos: seed ${config.seed}  (replay: ${replay})`)
  say(
    `${config.durationMs / 1000} s of workload, ${config.workers} workers${config.sharedNames ? ` sharing ${config.pool} names` : ''}, files up to ${formatBytes(config.maxBytes)}, ` +
      `${config.keepers} keepers, ${config.replicas} replicas; faults: keeper kills, ${config.masterKills} master kill(s), ${config.corruptions} corruptions, ${config.diskFills} disk fills`,
  )

  const work = await tempDir('dfs-chaos-work-')
  workDir = work
  const mountPoint = await prepareSmallDisk(work)
  const smallDiskSlot = mountPoint ? config.keepers - 1 : undefined

  // Everything the run will do, drawn before anything runs.
  const rng = new Rng(config.seed)
  const plan = planFaults(rng.fork('faults'), {
    durationMs: config.durationMs,
    keepers: config.keepers,
    minAlive: MIN_ALIVE,
    killGapMs: config.killGapMs,
    downMs: config.downMs,
    masterKills: config.masterKills,
    sigtermChance: 0.15,
    corruptions: config.corruptions,
    smallDiskSlot,
    diskFills: smallDiskSlot === undefined ? 0 : config.diskFills,
  })
  for (const fault of plan) journal.event('plan', describeFault(fault))
  const sharedNames = config.sharedNames ? drawSharedNames(rng.fork('shared-names'), config.pool) : []
  // More operations than a worker can run before the deadline: even a failing command takes longer.
  const ops = Math.ceil(config.durationMs / 100) + 100
  scripts = Array.from({length: config.workers}, (_, index) =>
    drawScript(rng.fork(`worker-${index + 1}`), index + 1, {ops, maxBytes: config.maxBytes, sharedNames, sharedChance: 0.5}),
  )

  const started = Date.now()
  cluster = await TestCluster.start({
    keepers: smallDiskSlot === undefined ? config.keepers : config.keepers - 1,
    replicas: config.replicas,
    // Scrub often, so that damaged replicas are found and the scrubber meets files that come and go.
    keeperArgs: ['--scrub-interval', '3s', '--scrub-rate', '16MiB'],
  })
  if (mountPoint) await cluster.addKeeper(join(mountPoint, 'data'))
  // Every dfs command of the run (workers and checks, runDfs) shows the cluster's admin token.
  process.env.DFS_TOKEN = cluster.token
  const theCluster = cluster
  journal.event('chaos', `cluster up in ${Date.now() - started} ms: master ${cluster.masterUrl}, keepers ${cluster.keepers.map((keeper) => keeper.id).join(' ')}${smallDiskSlot === undefined ? '' : ` (slot ${smallDiskSlot} on a ${formatBytes(8 * config.maxBytes)} disk)`}`)
  const theModel = new Model()
  const theMonkey = new ChaosMonkey(cluster, journal, {
    minAlive: MIN_ALIVE,
    replicas: config.replicas,
    fillers: new Map(mountPoint && smallDiskSlot !== undefined ? [[smallDiskSlot, join(mountPoint, 'filler')]] : []),
  })
  model = theModel
  monkey = theMonkey

  // The workload under faults.
  const workloadStart = Date.now()
  const deadline = workloadStart + config.durationMs
  const stop = () => Date.now() >= deadline || cleaning !== undefined
  const workers = scripts.map(
    (script, index) =>
      new Worker(index + 1, script, theModel, journal, {
        masterUrl: () => theCluster.masterUrl,
        seed: config.seed,
        workDir: work,
        commandTimeoutMs: config.commandTimeoutMs,
        waitTimeout: '8s',
      }),
  )
  const progress = setInterval(() => {
    const {ops, chaos} = journal
    say(
      `  ${Math.round((Date.now() - workloadStart) / 1000)} s: put ${ops.put.ok}/${ops.put.ok + ops.put.failed}, get ${ops.get.ok}/${ops.get.ok + ops.get.absent + ops.get.failed}, ` +
        `rm ${ops.rm.ok}/${ops.rm.ok + ops.rm.absent + ops.rm.failed} ok; keeper kills ${chaos.keeperKills + chaos.keeperTerms}, master kills ${chaos.masterKills}, ` +
        `corruptions ${chaos.corruptions}, disk fills ${chaos.diskFills}; ${theMonkey.aliveKeepers} keepers running`,
    )
  }, 5000)
  try {
    await Promise.all([theMonkey.run(plan, workloadStart, stop), ...workers.map((worker) => worker.run(stop))])
  } finally {
    clearInterval(progress)
  }

  const workloadMs = Date.now() - workloadStart
  // Under CI a fault kind that never struck is a failure, as a skipped fault test is.
  const planned = (kind: string) => plan.filter((fault) => fault.kind === kind).length
  if (process.env.CI && planned('corrupt-replica') > 0 && journal.chaos.corruptions === 0) {
    journal.violation({kind: 'fault-skipped', message: `none of the ${planned('corrupt-replica')} planned corruptions found a replica fit to damage`})
  }

  journal.event('chaos', `workload over after ${workloadMs} ms (${workers.map((worker) => `w${worker.id} ${worker.done} ops`).join(', ')}); undoing every fault`, true)

  // Every fault undone, then the invariant.
  await theMonkey.restartAll()
  const figures = await verifyInvariant(cluster, theModel, journal, {
    workDir: work,
    settleDeadlineMs: config.settleDeadlineMs,
    commandTimeoutMs: config.commandTimeoutMs,
    corruptions: theMonkey.corruptions,
    log: say,
  })

  const failed = journal.violations.length > 0
  const report = buildReport(figures, workloadMs, Date.now() - started, theMonkey, {corruptions: planned('corrupt-replica'), diskFills: planned('fill-disk')})
  let logDir: string | undefined
  if (failed || config.keepLogs) logDir = await saveLogs(theMonkey, theModel, report)
  printReport(report, figures, logDir, theMonkey)
  if (config.json) process.stdout.write(JSON.stringify({...report, logDir}, null, 2) + '\n')
  return failed ? 1 : 0
}

function buildReport(figures: VerifyFigures, workloadMs: number, totalMs: number, monkey: ChaosMonkey, planned: {corruptions: number; diskFills: number}) {
  const {ops, chaos} = journal
  const count = (kind: 'put' | 'get' | 'rm') => ops[kind].ok + ops[kind].absent + ops[kind].failed
  return {
    seed: config.seed,
    replay,
    passed: journal.violations.length === 0,
    durationS: config.durationMs / 1000,
    workloadS: Math.round(workloadMs / 100) / 10,
    totalS: Math.round(totalMs / 100) / 10,
    cluster: {keepers: config.keepers, replicas: config.replicas, workers: config.workers, sharedNames: config.sharedNames ? config.pool : 0},
    operations: {total: count('put') + count('get') + count('rm'), put: ops.put, get: ops.get, rm: ops.rm, putWaitTimeouts: journal.putWaitTimeouts, bytesPut: journal.bytesPut, bytesGot: journal.bytesGot},
    faults: {...chaos, corruptionsPlanned: planned.corruptions, corruptionsRepaired: figures.corruptionsRepaired, diskFillsPlanned: planned.diskFills, keepersRunning: monkey.aliveKeepers},
    files: {
      names: figures.names,
      present: figures.present,
      presentConfirmed: figures.presentConfirmed,
      absent: figures.absent,
      verified: figures.filesVerified,
      bytesVerified: figures.bytesVerified,
      replicasVerified: figures.replicasVerified,
      replicaBytesVerified: figures.replicaBytesVerified,
      strayBlobs: figures.strayBlobs,
      phantomReplicas: figures.phantomReplicas,
      lost: figures.lost,
      bytesLost: figures.bytesLost,
    },
    settle: {settled: figures.settled, ms: figures.settleMs, fsck: figures.fsck},
    failures: Object.fromEntries(Object.entries(journal.failures).map(([kind, map]) => [kind, Object.fromEntries([...map].sort((a, b) => b[1] - a[1]))])),
    violations: journal.violations,
    warnings: journal.warnings,
  }
}

type Report = ReturnType<typeof buildReport>

function printReport(report: Report, figures: VerifyFigures, logDir: string | undefined, monkey: ChaosMonkey): void {
  const {operations: ops, faults, files} = report
  say('')
  say(
    `operations: ${ops.total} — put ${ops.put.ok} ok / ${ops.put.failed} failed (${ops.putWaitTimeouts} stored but --wait timed out), ` +
      `get ${ops.get.ok} ok / ${ops.get.absent} no such file / ${ops.get.failed} failed, rm ${ops.rm.ok} ok / ${ops.rm.absent} no such file / ${ops.rm.failed} failed`,
  )
  say(`            ${formatBytes(ops.bytesPut)} put, ${formatBytes(ops.bytesGot)} read back during the run; ${faults.getIntegrityErrors} gets refused bad bytes`)
  say(
    `faults:     keeper kills ${faults.keeperKills} (SIGKILL) + ${faults.keeperTerms} (SIGTERM), keeper restarts ${faults.keeperRestarts}, master kills ${faults.masterKills}, ` +
      `corruptions ${faults.corruptions} of ${faults.corruptionsPlanned} planned (${faults.corruptionsRepaired} found and repaired), disk fills ${faults.diskFills} of ${faults.diskFillsPlanned}`,
  )
  say(`settle:     ${figures.settled ? 'settled' : 'NOT settled'} in ${(figures.settleMs / 1000).toFixed(1)} s; fsck ${JSON.stringify(figures.fsck)}`)
  say(`files:      ${files.names} names: ${files.present} present at the end (${files.presentConfirmed} from a put that succeeded), ${files.absent} absent as the history allows`)
  say(`verified:   ${files.verified} files byte-exact (${formatBytes(files.bytesVerified)}) via dfs get; ${files.replicasVerified} replicas byte-exact on their keepers (${formatBytes(files.replicaBytesVerified)})`)
  say(`lost:       ${files.lost} files, bytes lost = ${files.bytesLost}; stray blobs ${files.strayBlobs}, phantom replicas ${files.phantomReplicas}`)
  for (const [kind, messages] of Object.entries(report.failures)) {
    const top = Object.entries(messages).slice(0, 6)
    if (top.length === 0) continue
    say(`${kind} failures:`)
    for (const [message, count] of top) say(`  ${String(count).padStart(4)} × ${message}`)
  }

  if (report.warnings.length > 0) {
    const byKind = new Map<string, number>()
    for (const warning of report.warnings) byKind.set(warning.kind, (byKind.get(warning.kind) ?? 0) + 1)
    say(`warnings:   ${[...byKind].map(([kind, count]) => `${kind} ×${count}`).join(', ')}`)
    for (const warning of report.warnings.filter((finding) => finding.kind !== 'restart-failed').slice(0, 5)) say(`  - ${warning.kind}: ${warning.message}`)
  }

  if (report.violations.length > 0) {
    say('')
    const byKind = new Map<string, number>()
    for (const finding of report.violations) byKind.set(finding.kind, (byKind.get(finding.kind) ?? 0) + 1)
    say(`INVARIANT VIOLATED: ${report.violations.length} finding(s): ${[...byKind].map(([kind, count]) => `${kind} ×${count}`).join(', ')}`)
    for (const finding of report.violations.slice(0, 10)) printEvidence(finding, monkey)
    if (report.violations.length > 10) say(`… and ${report.violations.length - 10} more (see the logs)`)
  }

  say('')
  if (logDir) say(`logs of every process, the timeline, the scripts and the report: ${logDir}`)
  say(
    `${report.passed ? 'PASSED' : 'FAILED'}: seed ${config.seed}, ${ops.total} operations, ${faults.keeperKills + faults.keeperTerms} keeper kills, ${faults.masterKills} master kills, ` +
      `${faults.corruptions} corruptions, ${faults.diskFills} disk fills, ${files.verified} files verified, bytes lost = ${files.bytesLost}, ${report.totalS} s`,
  )
  say(`replay: ${replay}`)
}

/** A finding with the timeline of its files and the servers' log lines that mention them. */
function printEvidence(finding: Finding, monkey: ChaosMonkey): void {
  say(`\n* ${finding.kind}: ${finding.message}`)
  if (finding.details) for (const line of finding.details.split('\n').slice(-16)) say(`    ${line}`)
  const needles = [...(finding.names ?? []), ...(finding.ids ?? [])].filter((needle) => needle.length > 0)
  if (needles.length === 0) return
  const timeline = journal.timelineFor(needles.map((needle) => (finding.names?.includes(needle) ? `"${needle}"` : needle)))
  if (timeline.length > 0) {
    say('  timeline:')
    for (const line of timeline.slice(-20)) say(`    ${line}`)
  }

  const logs = serverLines(monkey, needles)
  if (logs.length > 0) {
    say('  server logs:')
    for (const line of logs.slice(-30)) say(`    ${line}`)
  }
}

/** Lines of every process's log that mention one of `needles`, in time order, readable. */
function serverLines(monkey: ChaosMonkey, needles: string[]): string[] {
  const lines: Array<{time: number; text: string}> = []
  for (const {label, process} of monkey.processes) {
    for (const raw of process.logs) {
      if (!needles.some((needle) => raw.includes(needle) || raw.includes(JSON.stringify(needle).slice(1, -1)))) continue
      const {time, text} = readable(raw)
      lines.push({time, text: `${label.padEnd(18)} ${text}`})
    }
  }

  return lines.sort((a, b) => a.time - b.time).map((line) => line.text)
}

function readable(raw: string): {time: number; text: string} {
  try {
    const entry = JSON.parse(raw) as {time?: number; level?: number; msg?: string; code?: string; err?: {message?: string}}
    const time = entry.time ?? 0
    const level = ({10: 'trace', 20: 'debug', 30: 'info', 40: 'WARN', 50: 'ERROR', 60: 'FATAL'} as Record<number, string>)[entry.level ?? 30] ?? String(entry.level)
    const extra = [entry.code, entry.err?.message].filter(Boolean).join(' ')
    return {time, text: `${new Date(time).toISOString().slice(11, 23)} ${level.padEnd(5)} ${entry.msg ?? raw}${extra ? ` [${extra}]` : ''}`}
  } catch {
    return {time: 0, text: raw}
  }
}

async function saveLogs(monkey: ChaosMonkey, model: Model | undefined, report: unknown): Promise<string> {
  const dir = join(tmpdir(), `dfs-chaos-${config.seed}-${new Date().toISOString().replace(/[:.]/g, '-')}`)
  await mkdir(dir, {recursive: true})
  await writeFile(join(dir, 'timeline.log'), journal.timeline.join('\n') + '\n')
  await writeFile(join(dir, 'report.json'), JSON.stringify(report, null, 2) + '\n')
  await writeFile(join(dir, 'scripts.json'), JSON.stringify(scripts, null, 1) + '\n')
  if (model) await writeFile(join(dir, 'history.json'), JSON.stringify(model.records, null, 1) + '\n')
  for (const {label, process} of monkey.processes) {
    const file = label.replace(/[^A-Za-z0-9_-]+/g, '-') + '.log'
    await writeFile(join(dir, file), process.logs.map((raw) => readable(raw).text).join('\n') + '\n')
  }

  return dir
}

let exitCode = 1
try {
  exitCode = await main()
} catch (error) {
  say(`\nthe chaos run itself failed: ${(error as Error).stack ?? String(error)}`)
  if (monkey) {
    const logDir = await saveLogs(monkey, model, {seed: config.seed, replay, error: String(error), violations: journal.violations, warnings: journal.warnings}).catch(() => undefined)
    if (logDir) say(`logs of every process and the timeline: ${logDir}`)
  }

  say(`seed ${config.seed} (replay: ${replay})`)
  exitCode = 1
} finally {
  await cleanUp()
}

process.exit(exitCode)
