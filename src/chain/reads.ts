import { TransactionNotFoundError, TransactionReceiptNotFoundError, type Client, type Hex } from 'viem';
import { getTransaction, getTransactionReceipt } from 'viem/actions';
import { toChainError } from './errors.ts';

// viem throws for "not found"; for reconciliation a missing receipt is an answer, not a failure.

export type Receipt = Awaited<ReturnType<typeof getTransactionReceipt>>;
export type Transaction = Awaited<ReturnType<typeof getTransaction>>;

export async function receiptOrNull(client: Client, hash: Hex): Promise<Receipt | null> {
  try {
    return await getTransactionReceipt(client, { hash });
  } catch (err) {
    if (err instanceof TransactionReceiptNotFoundError) return null;
    throw toChainError(err, `reading the receipt of ${hash}`);
  }
}

export async function transactionOrNull(client: Client, hash: Hex): Promise<Transaction | null> {
  try {
    return await getTransaction(client, { hash });
  } catch (err) {
    if (err instanceof TransactionNotFoundError) return null;
    throw toChainError(err, `reading transaction ${hash}`);
  }
}
