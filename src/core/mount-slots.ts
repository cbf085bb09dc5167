import { chmodSync, closeSync, existsSync, openSync, readSync, renameSync, statSync, truncateSync, writeSync } from "node:fs";

/**
 * The live mount references of one host, in a file mapped into memory (MAP_SHARED).
 *
 * Why a mapped file: the engine's Mount and Unmount must find the reference recorded
 * before they are answered, and it must survive a crash of this process (SIGKILL
 * included). A store into a shared mapping lands in the kernel's page cache at once, with
 * no system call, so it survives the process like a write() would; it is the cheapest
 * way to meet that on the container start/stop path (an SQLite commit per Mount cost
 * more than the rest of the request). Like before, nothing is fsynced: only a kernel
 * crash or a power loss could drop a change, and both are a reboot, after which every
 * reference is void anyway (the file carries the boot id and is reset on a new one).
 *
 * Layout: a header (magic, slot size, boot id), then fixed-size slots. A slot holds one
 * (volume, mount ID) pair and its count. Each change becomes visible through ONE aligned
 * 32-bit store (Atomics.store, which the JIT never reorders), written after everything it
 * commits: a slot's `used` word last when filling it, first when freeing it; a count in
 * place. A process killed between any two stores leaves either the old or the new state.
 *
 * One process owns the file; MountRefs holds the state directory's lock before opening it.
 * The file only ever grows (zeros written with write(), so its blocks exist before they
 * are mapped: a full disk fails the write with ENOSPC instead of faulting a store). A
 * process killed inside that write leaves a tail shorter than one slot, all zeros and
 * never mapped as a slot: open cuts it off again.
 */

const MAGIC = "DQPMNT01";
const HEADER_BYTES = 128;
const BOOT_ID_OFFSET = 16;
const MAX_BOOT_ID_BYTES = HEADER_BYTES - BOOT_ID_OFFSET - 1;
/** A volume name is at most 255 bytes; a mount ID at most 256 UTF-16 units, so 768 bytes. */
const MAX_VOLUME_BYTES = 255;
const MAX_ID_BYTES = 768;
const SLOT_DATA = 12;
const SLOT_BYTES = 1152; // >= SLOT_DATA + MAX_VOLUME_BYTES + MAX_ID_BYTES, a multiple of 4
const INITIAL_SLOTS = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export interface SlotEntry {
  volume: string;
  mountId: string;
  count: number;
  slot: number;
}

/** The file is not a slot table we wrote (or was damaged): the caller moves it aside. */
export class SlotsDamaged extends Error {}

export class MountSlots {
  private bytes!: Uint8Array;
  private words!: Int32Array;
  private view!: DataView;
  private slotCount = 0;
  /** Free slot indices, the lowest last (reused first: the file stays compact). */
  private readonly free: number[] = [];
  private closed = false;

  private constructor(private readonly file: string) {}

  /**
   * Opens the table in `file` for boot `bootId` and returns what it holds. A missing or
   * empty file, or one from another boot, starts a fresh table holding `seed` (or nothing).
   * Throws SlotsDamaged when the file holds something else.
   */
  static open(file: string, bootId: string, seed: readonly [volume: string, mountId: string, count: number][] = []): { slots: MountSlots; entries: SlotEntry[] } {
    const slots = new MountSlots(file);
    const size = existsSync(file) ? statSync(file).size : 0;
    if (size > HEADER_BYTES) cutInterruptedGrowth(file, size);
    if (size === 0 || !slots.map().matchesBoot(bootId)) {
      slots.writeFresh(bootId, seed);
      slots.map();
    }
    const entries = slots.load();
    return { slots, entries };
  }

  /** Records a new pair with count 1 and returns its slot. */
  add(volume: string, mountId: string): number {
    this.requireOpen();
    const slot = this.free.pop() ?? this.grow();
    const base = HEADER_BYTES + slot * SLOT_BYTES;
    const volumeBytes = this.encodeAt(volume, base + SLOT_DATA, MAX_VOLUME_BYTES, "volume name");
    const idBytes = this.encodeAt(mountId, base + SLOT_DATA + volumeBytes, MAX_ID_BYTES, "mount ID");
    this.view.setUint16(base + 8, volumeBytes, true);
    this.view.setUint16(base + 10, idBytes, true);
    Atomics.store(this.words, (base >> 2) + 1, 1);
    Atomics.store(this.words, base >> 2, 1);
    return slot;
  }

  /** Sets the count of a used slot. */
  setCount(slot: number, count: number): void {
    this.requireOpen();
    Atomics.store(this.words, ((HEADER_BYTES + slot * SLOT_BYTES) >> 2) + 1, count);
  }

  /** Frees a slot: its pair is no longer recorded. */
  release(slot: number): void {
    this.requireOpen();
    Atomics.store(this.words, (HEADER_BYTES + slot * SLOT_BYTES) >> 2, 0);
    this.free.push(slot);
  }

  /** Drops the mapping (unmapped when collected); later changes throw. */
  close(): void {
    this.closed = true;
    this.bytes = new Uint8Array(0);
    this.words = new Int32Array(0);
    this.view = new DataView(new ArrayBuffer(0));
  }

  private requireOpen(): void {
    if (this.closed) throw new Error(`${this.file} is closed`);
  }

  private map(): this {
    const bytes = Bun.mmap(this.file, { shared: true });
    if (bytes.byteLength < HEADER_BYTES || (bytes.byteLength - HEADER_BYTES) % SLOT_BYTES !== 0) {
      throw new SlotsDamaged(`${this.file} is ${bytes.byteLength} bytes long, not a mount slot table`);
    }
    this.bytes = bytes;
    this.words = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.slotCount = (bytes.byteLength - HEADER_BYTES) / SLOT_BYTES;
    const magic = String.fromCharCode(...bytes.subarray(0, MAGIC.length));
    if (magic !== MAGIC || this.view.getUint32(8, true) !== SLOT_BYTES) {
      throw new SlotsDamaged(`${this.file} does not start with a mount slot table header`);
    }
    return this;
  }

  private matchesBoot(bootId: string): boolean {
    const length = this.bytes[BOOT_ID_OFFSET - 1] ?? 0;
    const stored = this.bytes.subarray(BOOT_ID_OFFSET, BOOT_ID_OFFSET + length);
    return Buffer.from(stored).equals(Buffer.from(bootIdBytes(bootId)));
  }

  /** Replaces the file with an empty table (plus `seed`), written aside and renamed over. */
  private writeFresh(bootId: string, seed: readonly [string, string, number][]): void {
    let slots = INITIAL_SLOTS;
    while (slots < seed.length) slots *= 2;
    const buffer = new Uint8Array(HEADER_BYTES + slots * SLOT_BYTES);
    const view = new DataView(buffer.buffer);
    encoder.encodeInto(MAGIC, buffer);
    view.setUint32(8, SLOT_BYTES, true);
    const boot = bootIdBytes(bootId);
    buffer[BOOT_ID_OFFSET - 1] = boot.length;
    buffer.set(boot, BOOT_ID_OFFSET);
    seed.forEach(([volume, mountId, count], slot) => {
      const base = HEADER_BYTES + slot * SLOT_BYTES;
      const volumeBytes = encoder.encodeInto(volume, buffer.subarray(base + SLOT_DATA, base + SLOT_DATA + MAX_VOLUME_BYTES)).written;
      const idBytes = encoder.encodeInto(mountId, buffer.subarray(base + SLOT_DATA + volumeBytes, base + SLOT_DATA + volumeBytes + MAX_ID_BYTES)).written;
      view.setUint16(base + 8, volumeBytes, true);
      view.setUint16(base + 10, idBytes, true);
      view.setInt32(base + 4, count, true);
      view.setInt32(base, 1, true);
    });
    const aside = `${this.file}.new`;
    const fd = openSync(aside, "w", 0o600);
    try {
      writeAll(fd, buffer, 0);
    } finally {
      closeSync(fd);
    }
    chmodSync(aside, 0o600);
    renameSync(aside, this.file);
  }

  private load(): SlotEntry[] {
    const entries: SlotEntry[] = [];
    const seen = new Set<string>();
    for (let slot = this.slotCount - 1; slot >= 0; slot--) {
      const base = HEADER_BYTES + slot * SLOT_BYTES;
      const used = this.words[base >> 2];
      if (used === 0) {
        this.free.push(slot);
        continue;
      }
      const count = this.words[(base >> 2) + 1] ?? 0;
      const volumeBytes = this.view.getUint16(base + 8, true);
      const idBytes = this.view.getUint16(base + 10, true);
      if (used !== 1 || count < 1 || volumeBytes < 1 || volumeBytes > MAX_VOLUME_BYTES || idBytes < 1 || idBytes > MAX_ID_BYTES) {
        throw new SlotsDamaged(`slot ${slot} of ${this.file} is damaged`);
      }
      let volume: string;
      let mountId: string;
      try {
        volume = decoder.decode(this.bytes.subarray(base + SLOT_DATA, base + SLOT_DATA + volumeBytes));
        mountId = decoder.decode(this.bytes.subarray(base + SLOT_DATA + volumeBytes, base + SLOT_DATA + volumeBytes + idBytes));
      } catch {
        throw new SlotsDamaged(`slot ${slot} of ${this.file} is not valid UTF-8`);
      }
      const key = JSON.stringify([volume, mountId]);
      if (seen.has(key)) throw new SlotsDamaged(`${this.file} records ${key} twice`);
      seen.add(key);
      entries.push({ volume, mountId, count, slot });
    }
    return entries;
  }

  /** Doubles the table; returns a free slot. */
  private grow(): number {
    const added = this.slotCount;
    const fd = openSync(this.file, "r+");
    try {
      writeAll(fd, new Uint8Array(added * SLOT_BYTES), HEADER_BYTES + this.slotCount * SLOT_BYTES);
    } finally {
      closeSync(fd);
    }
    const first = this.slotCount;
    this.map();
    for (let slot = this.slotCount - 1; slot > first; slot--) this.free.push(slot);
    return first;
  }

  private encodeAt(text: string, offset: number, limit: number, what: string): number {
    const { read, written } = encoder.encodeInto(text, this.bytes.subarray(offset, offset + limit));
    if (read !== text.length) throw new Error(`${what} is longer than ${limit} bytes`);
    return written;
  }
}

/** Cuts off a zero tail shorter than one slot (an interrupted grow); any other tail stays for map() to refuse. */
function cutInterruptedGrowth(file: string, size: number): void {
  const whole = size - ((size - HEADER_BYTES) % SLOT_BYTES);
  if (whole === size) return;
  const tail = new Uint8Array(size - whole);
  const fd = openSync(file, "r");
  try {
    readSync(fd, tail, 0, tail.byteLength, whole);
  } finally {
    closeSync(fd);
  }
  if (tail.every((byte) => byte === 0)) truncateSync(file, whole);
}

function bootIdBytes(bootId: string): Uint8Array {
  return encoder.encode(bootId).subarray(0, MAX_BOOT_ID_BYTES);
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.byteLength) done += writeSync(fd, data, done, data.byteLength - done, position + done);
}
