import { readXattrs, type Xattrs } from '../xattr.ts';

/** Attributes overlayfs keeps for itself in an upper dir; they describe the mount, not the image. */
const overlayPrivate = /^(trusted|user)\.overlay\./;

export const overlayOpaqueNames = ['trusted.overlay.opaque', 'user.overlay.opaque'];

/** The extended attributes of each host path, with overlayfs's own removed; paths without any map to an empty map. */
export async function imageXattrs(hostPaths: readonly string[]): Promise<{ image: Map<string, Xattrs>; opaque: Set<string> }> {
  const raw = await readXattrs(hostPaths);
  const image = new Map<string, Xattrs>();
  const opaque = new Set<string>();
  for (const path of hostPaths) {
    const attrs = raw.get(path);
    const kept: Xattrs = new Map();
    for (const [name, value] of attrs ?? []) {
      if (overlayOpaqueNames.includes(name) && value.toString() === 'y') opaque.add(path);
      if (!overlayPrivate.test(name)) kept.set(name, value);
    }
    image.set(path, kept);
  }
  return { image, opaque };
}
