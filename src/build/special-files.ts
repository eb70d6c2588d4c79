import { runTool } from './tools.ts';

/** Node cannot mknod: device nodes, fifos and overlayfs whiteouts (char 0/0) go through mknod(1). */

export type NodeKind = 'character-device' | 'block-device' | 'fifo';

export async function makeNode(hostPath: string, kind: NodeKind, major = 0, minor = 0): Promise<void> {
  if (kind === 'fifo') {
    await runTool('mknod', ['--', hostPath, 'p']);
    return;
  }
  await runTool('mknod', ['--', hostPath, kind === 'character-device' ? 'c' : 'b', String(major), String(minor)]);
}

/** An overlayfs whiteout; unprivileged users may create it too (Linux 5.8+). */
export async function makeOverlayWhiteout(hostPath: string): Promise<void> {
  await makeNode(hostPath, 'character-device', 0, 0);
}

export function isPermissionFailure(error: unknown): boolean {
  return error instanceof Error && /Operation not permitted|Permission denied/.test(error.message);
}
