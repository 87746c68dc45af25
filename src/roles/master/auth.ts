import type {ClusterKey} from '../../lib/cluster-key.js'
import {DfsError} from '../../lib/errors.js'
import {verifyCredential} from '../../lib/jwt.js'
import {requireKeeper, type VerifiedMember} from '../../lib/member-auth.js'

// What the master believes of a keeper, and why. With a cluster key every call of a keeper carries
// a member credential (checked in server.ts), and these checks bind each keeper id to the process
// that registered it. Without a key there is no member to check (undefined): the master takes
// keepers at their word, as it always did on a trusted loopback.

/**
 * Which process (instance id) speaks for each keeper id. Kept in memory only: after a master
 * restart the first authenticated process of a keeper to speak binds its id again.
 */
export class KeeperBindings {
  readonly #instances = new Map<string, string>()

  /**
   * A registration: the sender must be a keeper speaking for the id it registers (none on its very
   * first start), and a keeper id that a live process holds is not given to another one.
   */
  checkRegistration(member: VerifiedMember | undefined, id: string | undefined, alive: (id: string) => boolean): void {
    if (!member) return
    if (member.role !== 'keeper' || member.keeperId !== id) {
      throw new DfsError('DFS_ERR_FORBIDDEN', `a registration for ${id === undefined ? 'a new keeper' : `keeper ${id}`} must come from that keeper`)
    }

    const bound = id === undefined ? undefined : this.#instances.get(id)
    if (id !== undefined && bound !== undefined && bound !== member.instance && alive(id)) {
      throw new DfsError('DFS_ERR_KEEPER_IN_USE', `keeper ${id} is alive as another process; a second process with its id is refused until the first is dead`)
    }
  }

  /** The id a registration was given now belongs to the process that registered. */
  bind(member: VerifiedMember | undefined, id: string): void {
    if (member) this.#instances.set(id, member.instance)
  }

  /** Throws DFS_ERR_FORBIDDEN unless the sender is keeper `id`, as the process that registered it. */
  requireKeeper(member: VerifiedMember | undefined, id: string): void {
    if (!member) return
    requireKeeper(member, id)
    const bound = this.#instances.get(id)
    if (bound === undefined) this.#instances.set(id, member.instance)
    else if (bound !== member.instance) throw new DfsError('DFS_ERR_FORBIDDEN', `keeper ${id} is registered by another process; this one must register first`)
  }
}

/**
 * Whether `grant` is a copy order of this master for generation `fileId`: the `replicate-from`
 * grant the master put in the order, which the keeper that made the copy hands back with its report
 * (a master restarted meanwhile no longer knows its orders under way, but it can check its signature).
 */
export async function isCopyOrderOf(key: ClusterKey, grant: string | undefined, fileId: string): Promise<boolean> {
  if (grant === undefined) return false
  try {
    const claims = await verifyCredential(key, 'grant', grant, ['op', 'fid'])
    return claims.op === 'replicate-from' && claims.fid === fileId
  } catch {
    return false
  }
}
