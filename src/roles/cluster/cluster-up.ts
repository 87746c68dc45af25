import {Listr} from 'listr2'

import {DfsError} from '../../lib/errors.js'
import {knownClustersFile, rememberCluster} from '../../lib/known-clusters.js'
import {displayPath, LocalCluster, NodeStartError, type NodeExit} from './local-cluster.js'
import {StopSignals} from './stop-signals.js'

/** What `dfs cluster up` runs, already parsed from its flags, so the command only maps flags to this. */
export interface ClusterUpOptions {
  /** Everything lives here: master/, keeper-N/, logs/ and cluster.json. */
  dir: string
  keepers: number
  /** Port of the master; 0 picks a free one. */
  port: number
  /** Extra master flags, e.g. ['--replicas', '2', '--log-level', 'info']. */
  masterArgs: string[]
  /** Extra flags for every keeper, e.g. ['--log-level', 'info']. */
  keeperArgs: string[]
  /** Serve https with a private CA made in DIR/tls. */
  tls?: boolean
}

/** Where runClusterUp prints, so the role needs no oclif command: stdout lines, stderr lines, and the executable's name for the usage hints. */
export interface ClusterUpOutput {
  log(line: string): void
  error(line: string): void
  bin: string
}

/**
 * Runs a local cluster in the foreground until SIGINT/SIGTERM (or until every child has died), with
 * a progress list for starting and stopping; kept out of the command so the command stays thin.
 * Resolves once every child has exited; `killed` when a second signal cut the graceful stop short.
 */
export async function runClusterUp(options: ClusterUpOptions, output: ClusterUpOutput): Promise<{killed: boolean}> {
  let up = false
  let killed = false
  let allGone: (() => void) | undefined
  const cluster = new LocalCluster({
    dir: options.dir,
    keepers: options.keepers,
    port: options.port,
    masterArgs: options.masterArgs,
    keeperArgs: options.keeperArgs,
    tls: options.tls,
    onEvent: (event) => {
      if (event.type !== 'crashed' || !up) return
      const how = event.exit.signal ? `killed by ${event.exit.signal}` : `exit code ${event.exit.code}`
      output.error(`${event.node}${event.id ? ` (${event.id})` : ''} exited unexpectedly (${how}); see ${displayPath(event.logFile)}`)
      if (cluster.running.length === 0) allGone?.()
    },
  })

  // Signals are ours from the start, so a Ctrl-C during startup also stops what was started. A
  // second one kills every child at once; the stop under way then only waits for them to be gone
  // (reaped, cluster.json cleared), which takes no time, instead of exiting with children alive.
  // A third leaves at once, should a child be stuck where even SIGKILL waits (a hung disk).
  const signals = new StopSignals(() => {
    if (killed) process.exit(130)
    output.error('stopping now: killing every process of the cluster')
    killed = true
    cluster.signalAll('SIGKILL')
  })
  const keepAlive = setInterval(() => {}, 1 << 30)
  try {
    await cluster.prepare()
    const started = startAll(cluster, options.keepers).then(
      () => 'started' as const,
      (error: unknown) => {
        if (error instanceof NodeStartError && error.logTail && error.logFile) {
          output.error(`last lines of ${displayPath(error.logFile)}:\n${error.logTail.replace(/^/gm, '  | ')}`)
        }

        throw error
      },
    )
    const first = await Promise.race([started, signals.first])
    if (first !== 'started') {
      await cluster.stop()
      await started.catch(() => {})
      output.error(`stopped on ${first} before the cluster was up`)
      return {killed}
    }

    up = true
    // So that client commands find the admin token from DFS_MASTER alone; without the record they
    // still work with --token or DFS_TOKEN.
    await rememberCluster(cluster.masterUrl, cluster.tokenPath).catch((error: unknown) =>
      output.error(`could not record the cluster in ${displayPath(knownClustersFile())} (${(error as Error).message}): pass --token or DFS_TOKEN`),
    )
    output.log(usage(cluster.info(), cluster, output.bin))
    const reason = await Promise.race([signals.first, new Promise<'gone'>((resolve) => (allGone = () => resolve('gone')))])
    if (reason === 'gone') throw new DfsError('DFS_ERR_INTERNAL', `every process of the cluster has exited; see the logs in ${displayPath(cluster.logDir)}`)

    up = false
    await stopAll(cluster)
    output.log(killed ? 'cluster killed' : 'cluster stopped')
    return {killed}
  } finally {
    // Whatever happened above, no child is left behind and cluster.json is cleared.
    await cluster.stop()
    clearInterval(keepAlive)
    signals.dispose()
  }
}

/**
 * A live progress list on a terminal, plain lines otherwise; signals stay ours (StopSignals), not listr's.
 * A terminal that reports 0 columns (a pty nobody sized, e.g. under `script` or some CI runners) gets
 * plain lines too: listr's live renderer wraps to the width and would print one character per line.
 */
const LISTR_OPTIONS = {
  renderer: 'default',
  rendererOptions: {showErrorMessage: false},
  fallbackRenderer: 'simple',
  fallbackRendererCondition: !process.stdout.isTTY || !process.stdout.columns,
  registerSignalListeners: false,
} as const

/** Starts the master, then every keeper at once, showing each as it comes up. */
function startAll(cluster: LocalCluster, keepers: number): Promise<unknown> {
  return new Listr(
    [
      {
        title: 'Starting the master',
        task: async (_, task) => {
          const {url} = await cluster.startMaster()
          task.title = `master listening on ${url}`
        },
      },
      {
        title: `Starting ${keepers} keeper${keepers === 1 ? '' : 's'}`,
        task: (_, task) =>
          task.newListr(
            Array.from({length: keepers}, (_, index) => ({
              title: `Starting keeper-${index + 1}`,
              task: async (_: unknown, subtask: {title: string}) => {
                const {id, url} = await cluster.startKeeper(index + 1)
                subtask.title = `keeper-${index + 1} (${id}) listening on ${url}`
              },
            })),
            {concurrent: true},
          ),
      },
    ],
    LISTR_OPTIONS,
  ).run()
}

/** Stops the live keepers (all at once), then the master, showing which ones had to be killed. */
function stopAll(cluster: LocalCluster): Promise<unknown> {
  return new Listr(
    [
      {
        title: 'Stopping the keepers',
        task: (_, task) =>
          task.newListr(
            cluster.keepers.flatMap((node) =>
              node?.alive
                ? [
                    {
                      title: `Stopping ${node.name}`,
                      task: async (_: unknown, subtask: {title: string}) => {
                        const exit = await cluster.stopNode(node)
                        subtask.title = `${node.name} ${stopOutcome(exit)}`
                      },
                    },
                  ]
                : [],
            ),
            {concurrent: true},
          ),
      },
      {
        title: 'Stopping the master',
        skip: () => !cluster.master?.alive,
        task: async (_, task) => {
          const exit = await cluster.stopNode(cluster.master!)
          task.title = `the master ${stopOutcome(exit)}`
        },
      },
    ],
    LISTR_OPTIONS,
  ).run()
}

function stopOutcome(exit: NodeExit | undefined): string {
  if (exit?.forced) return 'did not stop in time and was killed'
  return exit?.signal === 'SIGKILL' ? 'was killed' : 'stopped'
}

/** The block printed once the cluster is up: where everything is and what to try next. */
function usage(
  info: {master: {url: string}; keepers: Array<{name: string; id?: string; url: string}>},
  paths: {dir: string; logDir: string; secretPath: string; tokenPath: string; caPath?: string},
  bin: string,
): string {
  const width = Math.max(8, ...info.keepers.map((keeper) => keeper.name.length)) + 2
  const row = (label: string, value: string) => `  ${label.padEnd(width)}${value}`
  return [
    '',
    `dfs cluster is up: 1 master, ${info.keepers.length} keeper${info.keepers.length === 1 ? '' : 's'}`,
    row('master', info.master.url),
    ...info.keepers.map((keeper) => row(keeper.name, `${keeper.url}  (${keeper.id})`)),
    row('data', displayPath(paths.dir)),
    row('logs', displayPath(paths.logDir)),
    row('key', `${displayPath(paths.secretPath)}  (--secret-file for more keepers)`),
    row('token', `${displayPath(paths.tokenPath)}  (admin; found by dfs commands from DFS_MASTER)`),
    ...(paths.caPath ? [row('CA', `${displayPath(paths.caPath)}  (--ca for clients)`)] : []),
    '',
    // The token itself is never printed (it would sit in a terminal's scrollback); its file is.
    `Open the dashboard: ${info.master.url}/  (log in with the admin token in ${displayPath(paths.tokenPath)})`,
    '',
    // `npx` finds the bin right after `npm ci` in a checkout, where `dfs` is on no PATH (and it finds a global install too).
    'Try it from another terminal:',
    `  export DFS_MASTER=${info.master.url}`,
    ...(paths.caPath ? [`  export DFS_CA=${paths.caPath}`] : []),
    `  npx ${bin} put video.mp4`,
    `  npx ${bin} ls`,
    `  npx ${bin} get video.mp4 -o copy.mp4`,
    `  npx ${bin} status`,
    '',
    'Press Ctrl-C to stop.',
  ].join('\n')
}
