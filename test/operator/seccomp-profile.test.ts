// config/seccomp/restack-build.json is what scripts/seccomp-profile generates from containerd's
// own default profile: regenerated here and compared, so the file can never drift by hand.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { requireProgram, startOrSkip } from '../services/service.ts';

const root = join(import.meta.dirname, '..', '..');
const { skip } = await startOrSkip(() => requireProgram('go', 'golang (https://go.dev/doc/install)'));

test('the build pods\' seccomp profile is containerd\'s default for CAP_SYS_ADMIN plus pivot_root, as generated', { skip }, async () => {
  const generated = await execa('go', ['run', '.'], { cwd: join(root, 'scripts', 'seccomp-profile') });
  const shipped = await readFile(join(root, 'config', 'seccomp', 'restack-build.json'), 'utf8');
  assert.equal(shipped, `${generated.stdout}\n`, 'regenerate: cd scripts/seccomp-profile && go run . > ../../config/seccomp/restack-build.json');
  const profile = JSON.parse(shipped) as { defaultAction: string; syscalls: { names: string[]; action: string }[] };
  assert.equal(profile.defaultAction, 'SCMP_ACT_ERRNO');
  const allowed = new Set(profile.syscalls.filter((rule) => rule.action === 'SCMP_ACT_ALLOW').flatMap((rule) => rule.names));
  for (const call of ['pivot_root', 'mount', 'umount2', 'unshare', 'setns', 'chroot']) assert.ok(allowed.has(call), call);
  for (const call of ['kexec_load', 'init_module', 'reboot', 'open_by_handle_at', 'acct']) assert.ok(!allowed.has(call), `${call} stays denied`);
});
