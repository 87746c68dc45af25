import {Args} from '@oclif/core'

import {DfsCommand, caFlag, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'
import {asDfsError} from '../lib/errors.js'
import type {FileInfo} from '../lib/protocol.js'

export default class MvCommand extends DfsCommand {
  static override summary = 'Rename a stored file: the master renames its record at once, no bytes move.'
  static override description = 'NEW must be free: a file of that name is never replaced (dfs rm it first).'
  static override examples = ['<%= config.bin %> mv a.mp4 videos/a.mp4']
  static override args = {
    old: Args.string({description: 'name of a stored file', required: true}),
    new: Args.string({description: 'its new name (not taken)', required: true}),
  }

  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(MvCommand)
    const {moveFile} = await import('../roles/client/admin.js')
    const master = await this.master(flags)
    let outcome: {ok: true; result: FileInfo} | {ok: false; error: ReturnType<typeof asDfsError>}
    try {
      outcome = {ok: true, result: await moveFile(master, args.old, args.new)}
    } catch (error) {
      outcome = {ok: false, error: asDfsError(error)}
    }

    this.reportEach([outcome], {
      json: flags.json,
      subject: () => ({name: args.old}),
      entry: (file) => ({to: file.name, fileId: file.fileId}),
      line: (file) => `moved ${args.old} to ${file.name}`,
      what: 'moves',
    })
  }
}
