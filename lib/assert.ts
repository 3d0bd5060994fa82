// invariant() is for programmer errors only: a false condition means a bug, and crashing beats
// carrying on with corrupt state. Never use it on input from the network, disk or an operator.
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never, message = 'unreachable'): never {
  throw new AssertionError(`${message}: ${JSON.stringify(value)}`);
}
