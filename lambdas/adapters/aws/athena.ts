import {
  type AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  TooManyRequestsException,
} from '@aws-sdk/client-athena';
import type { QueryEngine } from '../../core/analytics/daily.ts';
import { athenaLiteral, InvalidTokenError, type PagedQueries } from '../../core/api/query.ts';

export interface AthenaEngineOptions {
  readonly workGroup: string;
  readonly database: string;
  /** The lake bucket UNLOAD writes to. */
  readonly bucket: string;
  /** Wait between polls, doubling up to 5 s. */
  readonly pollMs?: number;
  /** Give up on a query after this long. */
  readonly timeoutMs?: number;
  /** Runs of a query that failed for a transient reason (throttling), the first included. */
  readonly attempts?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Told while a query runs (the CLI prints a progress line). */
  readonly onProgress?: (state: {
    id: string;
    state: string;
    elapsedMs: number;
    bytesScanned: number;
  }) => void;
}

/** Rows one GetQueryResults call may return (the API's MaxResults maximum). */
export const ATHENA_MAX_RESULTS = 1000;

/** Failures worth running the query again for: Athena's own throttling and S3 slow-downs. */
const TRANSIENT = /throttl|rate exceeded|slow ?down|too many|internal error/i;

/**
 * Athena as the query engine: start the query in the workgroup, poll until it ends,
 * page through the results; UNLOAD for writing Parquet or CSV into the lake. Parameters
 * are passed as execution parameters, never spliced into the SQL.
 */
export function athenaEngine(
  client: AthenaClient,
  options: AthenaEngineOptions,
): QueryEngine & {
  query(
    sql: string,
    parameters?: readonly string[],
  ): Promise<{ id: string; rows: Record<string, unknown>[]; bytesScanned: number }>;
} {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const attempts = options.attempts ?? 3;

  async function start(sql: string, parameters?: readonly string[]): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        const started = await client.send(
          new StartQueryExecutionCommand({
            QueryString: sql,
            WorkGroup: options.workGroup,
            QueryExecutionContext: { Database: options.database },
            ...(parameters?.length ? { ExecutionParameters: [...parameters] } : {}),
          }),
        );
        if (!started.QueryExecutionId) throw new Error('Athena started a query without an id');
        return started.QueryExecutionId;
      } catch (error) {
        if (error instanceof TooManyRequestsException && attempt < 5) {
          await sleep(200 * 2 ** attempt);
          continue;
        }
        throw error;
      }
    }
  }

  async function wait(id: string): Promise<{ state: string; reason: string; bytesScanned: number }> {
    const began = Date.now();
    let delay = options.pollMs ?? 500;
    for (;;) {
      const { QueryExecution: execution } = await client.send(
        new GetQueryExecutionCommand({ QueryExecutionId: id }),
      );
      const state = execution?.Status?.State ?? 'UNKNOWN';
      const bytesScanned = execution?.Statistics?.DataScannedInBytes ?? 0;
      options.onProgress?.({ id, state, elapsedMs: Date.now() - began, bytesScanned });
      if (state === 'SUCCEEDED' || state === 'FAILED' || state === 'CANCELLED') {
        return { state, reason: execution?.Status?.StateChangeReason ?? '', bytesScanned };
      }
      if (Date.now() - began > (options.timeoutMs ?? 10 * 60_000)) {
        throw new Error(
          `Athena query ${id} still ${state} after ${Math.round((Date.now() - began) / 1000)} s`,
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  async function execute(
    sql: string,
    parameters?: readonly string[],
  ): Promise<{ id: string; bytesScanned: number }> {
    for (let attempt = 1; ; attempt++) {
      const id = await start(sql, parameters);
      const { state, reason, bytesScanned } = await wait(id);
      if (state === 'SUCCEEDED') return { id, bytesScanned };
      if (state === 'FAILED' && TRANSIENT.test(reason) && attempt < attempts) {
        await sleep(1000 * attempt);
        continue;
      }
      throw new Error(`Athena query ${id} ${state.toLowerCase()}: ${reason}`);
    }
  }

  async function results(id: string): Promise<Record<string, unknown>[]> {
    const rows: Record<string, unknown>[] = [];
    let columns: string[] | undefined;
    let token: string | undefined;
    do {
      const page = await client.send(new GetQueryResultsCommand({ QueryExecutionId: id, NextToken: token }));
      columns ??= page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => c.Name ?? '') ?? [];
      for (const [i, row] of (page.ResultSet?.Rows ?? []).entries()) {
        const values = row.Data?.map((d) => d.VarCharValue ?? null) ?? [];
        // The first row of the first page repeats the column names.
        if (token === undefined && i === 0 && values.every((v, k) => v === columns?.[k])) continue;
        rows.push(Object.fromEntries((columns ?? []).map((c, k) => [c, values[k] ?? null])));
      }
      token = page.NextToken;
    } while (token);
    return rows;
  }

  return {
    async query(sql, parameters) {
      const { id, bytesScanned } = await execute(sql, parameters);
      return { id, rows: await results(id), bytesScanned };
    },
    async run(sql) {
      const { id, bytesScanned } = await execute(sql);
      return { rows: /^\s*(SELECT|WITH|SHOW|DESCRIBE)\b/i.test(sql) ? await results(id) : [], bytesScanned };
    },
    async unload(select, prefix, format) {
      const properties =
        format === 'parquet'
          ? "format = 'PARQUET', compression = 'SNAPPY'"
          : "format = 'TEXTFILE', field_delimiter = ','";
      await execute(`UNLOAD (${select}) TO 's3://${options.bucket}/${prefix}' WITH (${properties})`);
    },
  };
}

/**
 * The query API's engine on Athena: the plan's parameters become execution parameters;
 * the request waits up to `waitMs`, then answers with a token holding the execution id
 * (and Athena's page token). A token is honoured only for the query it was made for:
 * the execution's SQL and parameters must match the request's.
 */
export function athenaPagedQueries(
  client: AthenaClient,
  options: Pick<AthenaEngineOptions, 'workGroup' | 'database' | 'sleep'>,
): PagedQueries {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const encode = (token: { id: string; page?: string }) =>
    Buffer.from(JSON.stringify(token)).toString('base64url');
  const decode = (text: string): { id: string; page?: string } => {
    try {
      const token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as {
        id?: unknown;
        page?: unknown;
      };
      if (typeof token.id !== 'string' || (token.page !== undefined && typeof token.page !== 'string'))
        throw new Error('shape');
      return { id: token.id, ...(token.page === undefined ? {} : { page: token.page }) };
    } catch {
      throw new InvalidTokenError('next is not a token this API gave');
    }
  };
  return {
    async page(plan, token, { waitMs, pageSize }) {
      const parameters = plan.params.map(athenaLiteral);
      let state = token === undefined ? undefined : decode(token);
      if (!state) {
        const started = await client.send(
          new StartQueryExecutionCommand({
            QueryString: plan.sql,
            WorkGroup: options.workGroup,
            QueryExecutionContext: { Database: options.database },
            ExecutionParameters: parameters,
          }),
        );
        if (!started.QueryExecutionId) throw new Error('Athena started a query without an id');
        state = { id: started.QueryExecutionId };
      }
      const began = Date.now();
      let delay = 250;
      let bytesScanned: number | undefined;
      for (;;) {
        const { QueryExecution: execution } = await client.send(
          new GetQueryExecutionCommand({ QueryExecutionId: state.id }),
        );
        if (
          token !== undefined &&
          (execution?.Query !== plan.sql ||
            JSON.stringify(execution?.ExecutionParameters ?? []) !== JSON.stringify(parameters))
        ) {
          throw new InvalidTokenError('next belongs to another query: repeat the same parameters');
        }
        const status = execution?.Status?.State;
        if (status === 'FAILED' || status === 'CANCELLED') {
          throw new Error(
            `Athena query ${state.id} ${status.toLowerCase()}: ${execution?.Status?.StateChangeReason ?? ''}`,
          );
        }
        if (status === 'SUCCEEDED') {
          bytesScanned = execution?.Statistics?.DataScannedInBytes;
          break;
        }
        if (Date.now() - began >= waitMs) return { rows: [], running: true, next: encode(state) };
        await sleep(delay);
        delay = Math.min(delay * 2, 2000);
      }
      const first = state.page === undefined;
      const page = await client.send(
        new GetQueryResultsCommand({
          QueryExecutionId: state.id,
          // The first page starts with the header row; Athena hands out at most 1,000 rows a
          // call, so a first page of 1,000 holds 999 readings and `next` carries on.
          MaxResults: Math.min(ATHENA_MAX_RESULTS, first ? pageSize + 1 : pageSize),
          ...(state.page === undefined ? {} : { NextToken: state.page }),
        }),
      );
      const columns = page.ResultSet?.ResultSetMetadata?.ColumnInfo?.map((c) => c.Name ?? '') ?? [];
      const rows = (page.ResultSet?.Rows ?? [])
        .slice(first ? 1 : 0)
        .map((row) => Object.fromEntries(columns.map((c, k) => [c, row.Data?.[k]?.VarCharValue ?? null])));
      return {
        rows,
        ...(page.NextToken ? { next: encode({ id: state.id, page: page.NextToken }) } : {}),
        ...(bytesScanned === undefined ? {} : { bytesScanned }),
      };
    },
  };
}
