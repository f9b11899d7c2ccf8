import type { Kysely, Transaction } from "kysely";
import type { Database, TeamRow } from "../db/tables.js";

type Db = Kysely<Database> | Transaction<Database>;

/** Inserts a team; returns undefined when the name is taken. */
export async function insertTeam(
  db: Db,
  team: { id: string; name: string; key_format?: string | null },
): Promise<TeamRow | undefined> {
  return db
    .insertInto("teams")
    .values({ ...team, created_at: new Date() })
    .onConflict((oc) => oc.column("name").doNothing())
    .returningAll()
    .executeTakeFirst();
}

/** Finds a team by id. */
export async function findTeam(db: Db, id: string): Promise<TeamRow | undefined> {
  return db.selectFrom("teams").selectAll().where("id", "=", id).executeTakeFirst();
}

/** One page of teams, oldest first; fetches `limit + 1`. */
export async function listTeams(
  db: Db,
  options: { limit: number; after?: { createdAt: Date; id: string } | undefined },
): Promise<TeamRow[]> {
  let query = db
    .selectFrom("teams")
    .selectAll()
    .orderBy("created_at", "asc")
    .orderBy("id", "asc")
    .limit(options.limit + 1);
  const after = options.after;
  if (after) {
    query = query.where((eb) =>
      eb.or([
        eb("created_at", ">", after.createdAt),
        eb.and([eb("created_at", "=", after.createdAt), eb("id", ">", after.id)]),
      ]),
    );
  }
  return query.execute();
}
