/**
 * Per-window statistics of clean user records: how many records, how many distinct users
 * (by id), and the most and least represented countries. Ties are listed in full, sorted
 * by name, so the answer does not depend on arrival order.
 */

export interface CountryRank {
  countries: string[];
  count: number;
}

export interface CountrySummary {
  records: number;
  uniqueUsers: number;
  countries: number;
  most: CountryRank;
  least: CountryRank;
}

export class CountryTally {
  records = 0;
  readonly #counts = new Map<string, number>();
  readonly #users = new Set<string>();

  add(country: string, userId: string | number): this {
    this.records++;
    this.#counts.set(country, (this.#counts.get(country) ?? 0) + 1);
    this.#users.add(String(userId));
    return this;
  }

  summary(): CountrySummary {
    let most: CountryRank = { countries: [], count: 0 };
    let least: CountryRank = { countries: [], count: 0 };
    for (const [country, count] of this.#counts) {
      if (count > most.count) most = { countries: [country], count };
      else if (count === most.count) most.countries.push(country);
      if (least.countries.length === 0 || count < least.count) least = { countries: [country], count };
      else if (count === least.count) least.countries.push(country);
    }
    most.countries.sort();
    least.countries.sort();
    return { records: this.records, uniqueUsers: this.#users.size, countries: this.#counts.size, most, least };
  }
}

/** "most: China (12); least: Chad, Fiji (1); 230 records, 221 unique users" */
export function describeSummary(summary: CountrySummary): string {
  const rank = (r: CountryRank) => (r.countries.length === 0 ? 'none' : `${r.countries.join(', ')} (${r.count})`);
  return `most: ${rank(summary.most)}; least: ${rank(summary.least)}; ${summary.records} records, ${summary.uniqueUsers} unique users`;
}
