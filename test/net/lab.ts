// Hosts with addresses of their own, for tests of what a network does to dfs: a bridge, and one
// network namespace per host (master, keepers, client) with a veth on the bridge and lo up. The
// test process itself stays in the root namespace and reaches every host through the bridge's own
// address, as an observer that no partition cuts off.
//
// Partitions and bad links are made inside each host's namespace with nftables (this kernel has no
// netem): a set of addresses the host drops both ways (cut, isolate), a chain with random loss,
// and a chain that drops everything but lo (a link that is down: flap). Rates are shaped with tbf
// on both ends of the host's veth. Every name carries a tag of this process and lab, the subnet is
// picked at random, and everything is deleted on destroy() and, should the test process end first
// (failure, SIGINT, SIGTERM), by the cleanup in test/helpers/cleanup.ts.

import {execFile, execFileSync} from 'node:child_process'
import {randomInt} from 'node:crypto'
import {accessSync, constants} from 'node:fs'
import {promisify} from 'node:util'

import {runAtExit} from '../helpers/cleanup.js'
import type {ClusterPlacement} from '../helpers/cluster.js'

const run = promisify(execFile)

/** The port every keeper listens on in its own namespace (each namespace has its own ports). */
export const KEEPER_PORT = 7701

export interface LabHost {
  /** The name the test gave it: "master", "k1", "client". */
  readonly name: string
  /** Its network namespace. */
  readonly ns: string
  /** Its address on the bridge. */
  readonly address: string
  /** The end of its veth in the root namespace (on the bridge); inside, the other end is eth0. */
  readonly veth: string
  /** Runs a command inside its namespace: `[...prefix, command, ...args]`. */
  readonly prefix: string[]
}

export interface Flapping {
  /** Stops toggling and leaves the link up. */
  stop(): Promise<void>
  /** How many times the link went down. */
  readonly downs: number
}

let labs = 0

export class NetLab {
  readonly #hosts = new Map<string, LabHost>()
  #destroyed = false
  readonly #cleanup: () => void

  private constructor(
    /** Prefix of every name this lab made: "dn" + pid + lab number, in hex. */
    readonly tag: string,
    /** The first three octets of its /24: "10.23.45". */
    readonly subnet: string,
  ) {
    this.#cleanup = runAtExit(() => this.#destroySync())
  }

  /** The bridge's own address: where the test process's requests to the hosts come from. */
  get observer(): string {
    return `${this.subnet}.1`
  }

  get bridge(): string {
    return `${this.tag}br`
  }

  /**
   * Why namespaces cannot be made here, or undefined if they can: not root, or `ip`, `nft` or `tc`
   * missing (CI installs nftables itself).
   */
  static unavailable(): string | undefined {
    if (process.platform !== 'linux') return 'network namespaces need Linux'
    if (process.getuid?.() !== 0) return 'network namespaces need root (run as root, as CI does)'
    for (const tool of ['ip', 'nft', 'tc']) if (!onPath(tool)) return `\`${tool}\` is not installed (apt-get install -y iproute2 nftables)`
    return undefined
  }

  /** Makes the bridge and one namespace per name; if any step fails, what was made is deleted. */
  static async create(names: string[]): Promise<NetLab> {
    const tag = `dn${process.pid.toString(16)}${(labs++).toString(16)}`
    const lab = new NetLab(tag, await freeSubnet())
    try {
      await ip('link', 'add', lab.bridge, 'type', 'bridge')
      await ip('addr', 'add', `${lab.observer}/24`, 'dev', lab.bridge)
      await ip('link', 'set', lab.bridge, 'up')
      for (const [index, name] of names.entries()) await lab.#addHost(name, index + 2)
    } catch (error) {
      await lab.destroy()
      throw error
    }

    return lab
  }

  async #addHost(name: string, octet: number): Promise<void> {
    if (this.#hosts.has(name)) throw new Error(`two hosts named ${name}`)
    const ns = `${this.tag}-${name}`
    const veth = `${this.tag}h${octet}`
    const host: LabHost = {name, ns, address: `${this.subnet}.${octet}`, veth, prefix: ['ip', 'netns', 'exec', ns]}
    this.#hosts.set(name, host)
    await ip('netns', 'add', ns)
    // The inner end is made in the namespace directly, so that "eth0" never exists in the root one.
    await ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
    await ip('link', 'set', veth, 'master', this.bridge, 'up')
    await ip('-n', ns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0')
    await ip('-n', ns, 'link', 'set', 'eth0', 'up')
    await ip('-n', ns, 'link', 'set', 'lo', 'up')
    await nft(host, RULESET)
  }

  host(name: string): LabHost {
    const host = this.#hosts.get(name)
    if (!host) throw new Error(`no host ${name} in this lab`)
    return host
  }

  get hosts(): LabHost[] {
    return [...this.#hosts.values()]
  }

  /**
   * Where a TestCluster runs each server: the master on host `master`, keeper i on `keepers[i]`
   * (listening on every address, advertising its own), the CLI on `client`.
   */
  placement(master: string, keepers: string[], client: string): ClusterPlacement {
    const at = (name: string) => this.host(name)
    return {
      master: {prefix: at(master).prefix, args: ['--host', at(master).address]},
      keeper: (index) => {
        const host = keepers[index]
        if (host === undefined) throw new Error(`keeper ${index + 1} has no host in this lab (${keepers.length} given)`)
        return {prefix: at(host).prefix, args: ['--host', '0.0.0.0', '--port', String(KEEPER_PORT), '--advertise', `http://${at(host).address}:${KEEPER_PORT}`]}
      },
      client: at(client).prefix,
    }
  }

  /** Which host has this address (a keeper's URL, e.g.); undefined if none. */
  hostAt(urlOrAddress: string): LabHost | undefined {
    const address = urlOrAddress.includes('://') ? new URL(urlOrAddress).hostname : urlOrAddress
    return this.hosts.find((host) => host.address === address)
  }

  /**
   * Drops every packet between the hosts of one side and those of the other, both ways; the rest
   * of their traffic flows. Each host gets the other side's addresses in one command and every
   * host at once, so the cut falls (nearly) at one moment, not host by host: a cut spread over
   * seconds would be a series of smaller cuts, with outcomes of its own.
   */
  async cut(side: string | string[], others: string | string[]): Promise<void> {
    await this.#cutSet('add', [side].flat(), [others].flat())
  }

  /** Undoes cut(side, others). */
  async heal(side: string | string[], others: string | string[]): Promise<void> {
    await this.#cutSet('delete', [side].flat(), [others].flat())
  }

  /** Cuts `name` off from every other host of the lab (the observer still reaches it): its own rules alone cut it, in one command. */
  async isolate(name: string): Promise<void> {
    await this.cut(name, this.#othersThan(name))
  }

  /** Undoes isolate(name). */
  async rejoin(name: string): Promise<void> {
    await this.heal(name, this.#othersThan(name))
  }

  #othersThan(name: string): string[] {
    return this.hosts.filter((host) => host.name !== name).map((host) => host.name)
  }

  async #cutSet(op: 'add' | 'delete', side: string[], others: string[]): Promise<void> {
    const addresses = (names: string[]) => names.map((name) => this.host(name).address).join(', ')
    await Promise.all([
      ...side.map((name) => nft(this.host(name), `${op} element inet dfslab cut { ${addresses(others)} }`)),
      ...others.map((name) => nft(this.host(name), `${op} element inet dfslab cut { ${addresses(side)} }`)),
    ])
  }

  /** Drops `percent` % of the packets that `name` sends and of those it receives, at random; 0 ends it. */
  async loss(name: string, percent: number): Promise<void> {
    if (!(percent >= 0 && percent <= 100)) throw new Error(`loss of ${percent} %?`)
    const host = this.host(name)
    await nft(host, 'flush chain inet dfslab lossy')
    if (percent > 0) await nft(host, `add rule inet dfslab lossy numgen random mod 100 < ${Math.round(percent)} drop`)
  }

  /** Takes `name`'s link down (every packet but lo's dropped, the observer's too) or up again. */
  async link(name: string, state: 'up' | 'down'): Promise<void> {
    const host = this.host(name)
    await nft(host, 'flush chain inet dfslab down')
    if (state === 'down') await nft(host, 'add rule inet dfslab down drop')
  }

  /** Takes `name`'s link down for `downMs` and up for `upMs`, over and over, until stop(). */
  flap(name: string, timing: {downMs: number; upMs: number}): Flapping {
    let stopped = false
    let downs = 0
    const toggling = (async () => {
      while (!stopped) {
        await this.link(name, 'down')
        downs++
        await sleep(timing.downMs)
        await this.link(name, 'up')
        if (!stopped) await sleep(timing.upMs)
      }
    })()
    return {
      async stop() {
        stopped = true
        await toggling
      },
      get downs() {
        return downs
      },
    }
  }

  /**
   * Shapes `name`'s link with tbf to `rate` (tc syntax: "200mbit") each way: egress on its eth0 and
   * on the bridge's end of its veth. No delay: this kernel has no netem.
   */
  async shape(name: string, rate: string): Promise<void> {
    const host = this.host(name)
    const tbf = ['root', 'tbf', 'rate', rate, 'burst', '64kb', 'latency', '100ms']
    await run('tc', ['qdisc', 'replace', 'dev', host.veth, ...tbf])
    await run('ip', ['netns', 'exec', host.ns, 'tc', 'qdisc', 'replace', 'dev', 'eth0', ...tbf])
  }

  /** Undoes shape(name). */
  async unshape(name: string): Promise<void> {
    const host = this.host(name)
    await run('tc', ['qdisc', 'del', 'dev', host.veth, 'root'])
    await run('ip', ['netns', 'exec', host.ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root'])
  }

  /**
   * The HTTP status of GET `url` from inside `from`'s namespace, or the error's code ("timeout" if
   * nothing answered within `timeoutMs`): for a test to show what a host can and cannot reach.
   */
  async reach(from: string, url: string, timeoutMs = 2000): Promise<string> {
    const probe = `fetch(${JSON.stringify(url)}, {signal: AbortSignal.timeout(${timeoutMs})}).then((r) => console.log(r.status), (e) => console.log(e.name === 'TimeoutError' ? 'timeout' : (e.cause?.code ?? e.name)))`
    const {stdout} = await run('ip', ['netns', 'exec', this.host(from).ns, process.execPath, '-e', probe])
    return stdout.trim()
  }

  /** From now on, counts the bytes `host` receives from `from` (bytesFrom reads the count). */
  async countFrom(host: string, from: string): Promise<void> {
    await nft(this.host(host), `add rule inet dfslab counted ip saddr ${this.host(from).address} counter comment "from ${from}"`)
  }

  /** The bytes (IP packets, headers included) that reached `host` from `from` since countFrom(host, from); dropped packets do not count. */
  async bytesFrom(host: string, from: string): Promise<number> {
    const {stdout} = await run('ip', ['netns', 'exec', this.host(host).ns, 'nft', '-j', 'list', 'chain', 'inet', 'dfslab', 'counted'])
    for (const item of (JSON.parse(stdout) as {nftables: Array<{rule?: {comment?: string; expr: Array<{counter?: {bytes: number}}>}}>}).nftables) {
      if (item.rule?.comment !== `from ${from}`) continue
      const counter = item.rule.expr.find((expression) => expression.counter)
      if (counter) return counter.counter!.bytes
    }

    throw new Error(`${host} does not count what it receives from ${from}: call countFrom first`)
  }

  /** Deletes every namespace and link this lab made; safe to call twice. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return
    this.#destroySync()
  }

  #destroySync(): void {
    if (this.#destroyed) return
    this.#destroyed = true
    this.#cleanup()
    for (const host of this.#hosts.values()) {
      // Deleting the namespace deletes eth0 and so its peer; the peer's delete covers a half-made host.
      quietly('ip', ['netns', 'delete', host.ns])
      quietly('ip', ['link', 'delete', host.veth])
    }

    quietly('ip', ['link', 'delete', this.bridge])
  }
}

// Per host: packets from or to an address in @cut are dropped; `lossy` and `down` are filled by
// loss() and link(), `counted` by countFrom(). lo is never touched: a host always reaches itself.
const RULESET = `
table inet dfslab {
  set cut { type ipv4_addr; }
  chain lossy {}
  chain down {}
  chain counted {}
  chain input {
    type filter hook input priority 0; policy accept;
    iif "lo" accept
    ip saddr @cut drop
    jump down
    jump lossy
    jump counted
  }
  chain output {
    type filter hook output priority 0; policy accept;
    oif "lo" accept
    ip daddr @cut drop
    jump down
    jump lossy
  }
}`

async function ip(...args: string[]): Promise<void> {
  await run('ip', args)
}

/** Runs nft commands (a ruleset, or one command a line) inside the host's namespace. */
function nft(host: LabHost, commands: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', ['netns', 'exec', host.ns, 'nft', '-f', '-'], (error, _stdout, stderr) => {
      if (error) reject(new Error(`nft in ${host.name}: ${stderr.trim() || error.message}\n${commands}`))
      else resolve()
    })
    child.stdin!.end(commands)
  })
}

function quietly(command: string, args: string[]): void {
  try {
    execFileSync(command, args, {stdio: 'ignore'})
  } catch {
    // Already gone (or never made).
  }
}

/** A 10.x.y.0/24 that no address of this machine is in. */
async function freeSubnet(): Promise<string> {
  const {stdout} = await run('ip', ['-4', '-o', 'addr', 'show'])
  const {stdout: routes} = await run('ip', ['-4', 'route', 'show'])
  for (;;) {
    const subnet = `10.${randomInt(1, 255)}.${randomInt(0, 256)}`
    if (!stdout.includes(` ${subnet}.`) && !routes.includes(`${subnet}.`)) return subnet
  }
}

function onPath(tool: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    try {
      accessSync(`${dir}/${tool}`, constants.X_OK)
      return true
    } catch {
      // Not there.
    }
  }

  return false
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
