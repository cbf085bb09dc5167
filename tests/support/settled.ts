/** Whether `promise` has settled after the microtasks and I/O queued so far (within `waitMs`). */
export async function settled(promise: Promise<unknown>, waitMs = 20): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await Bun.sleep(waitMs);
  return done;
}
