/**
 * Country names as one canonical spelling. Input is matched after folding (case, accents,
 * dots, "&" → "and", extra spaces); known aliases map to one name so that statistics do
 * not split a country (USA, U.S. and United States of America → United States); small
 * typos (one edit in names of 5+ letters, two in names of 9+) map to the unique closest
 * name. Names we do not know are kept, capitalised word by word.
 */

export const COUNTRIES: readonly string[] = [
  'Afghanistan', 'Albania', 'Algeria', 'Andorra', 'Angola', 'Antigua and Barbuda', 'Argentina', 'Armenia', 'Australia', 'Austria',
  'Azerbaijan', 'Bahamas', 'Bahrain', 'Bangladesh', 'Barbados', 'Belarus', 'Belgium', 'Belize', 'Benin', 'Bhutan', 'Bolivia',
  'Bosnia and Herzegovina', 'Botswana', 'Brazil', 'Brunei', 'Bulgaria', 'Burkina Faso', 'Burundi', 'Cambodia', 'Cameroon', 'Canada',
  'Cape Verde', 'Central African Republic', 'Chad', 'Chile', 'China', 'Colombia', 'Comoros', 'Costa Rica', 'Croatia', 'Cuba', 'Cyprus',
  'Czech Republic', 'Democratic Republic of the Congo', 'Denmark', 'Djibouti', 'Dominica', 'Dominican Republic', 'East Timor', 'Ecuador',
  'Egypt', 'El Salvador', 'Equatorial Guinea', 'Eritrea', 'Estonia', 'Eswatini', 'Ethiopia', 'Fiji', 'Finland', 'France', 'Gabon',
  'Gambia', 'Georgia', 'Germany', 'Ghana', 'Greece', 'Grenada', 'Guatemala', 'Guinea', 'Guinea-Bissau', 'Guyana', 'Haiti', 'Honduras',
  'Hong Kong', 'Hungary', 'Iceland', 'India', 'Indonesia', 'Iran', 'Iraq', 'Ireland', 'Israel', 'Italy', 'Ivory Coast', 'Jamaica', 'Japan',
  'Jordan', 'Kazakhstan', 'Kenya', 'Kiribati', 'Kosovo', 'Kuwait', 'Kyrgyzstan', 'Laos', 'Latvia', 'Lebanon', 'Lesotho', 'Liberia',
  'Libya', 'Liechtenstein', 'Lithuania', 'Luxembourg', 'Macau', 'Madagascar', 'Malawi', 'Malaysia', 'Maldives', 'Mali', 'Malta',
  'Marshall Islands', 'Mauritania', 'Mauritius', 'Mexico', 'Micronesia', 'Moldova', 'Monaco', 'Mongolia', 'Montenegro', 'Morocco',
  'Mozambique', 'Myanmar', 'Namibia', 'Nauru', 'Nepal', 'Netherlands', 'New Zealand', 'Nicaragua', 'Niger', 'Nigeria', 'North Korea',
  'North Macedonia', 'Norway', 'Oman', 'Pakistan', 'Palau', 'Palestine', 'Panama', 'Papua New Guinea', 'Paraguay', 'Peru', 'Philippines',
  'Poland', 'Portugal', 'Puerto Rico', 'Qatar', 'Republic of the Congo', 'Romania', 'Russia', 'Rwanda', 'Saint Kitts and Nevis',
  'Saint Lucia', 'Saint Vincent and the Grenadines', 'Samoa', 'San Marino', 'Sao Tome and Principe', 'Saudi Arabia', 'Senegal', 'Serbia',
  'Seychelles', 'Sierra Leone', 'Singapore', 'Slovakia', 'Slovenia', 'Solomon Islands', 'Somalia', 'South Africa', 'South Korea',
  'South Sudan', 'Spain', 'Sri Lanka', 'Sudan', 'Suriname', 'Sweden', 'Switzerland', 'Syria', 'Taiwan', 'Tajikistan', 'Tanzania',
  'Thailand', 'Togo', 'Tonga', 'Trinidad and Tobago', 'Tunisia', 'Turkey', 'Turkmenistan', 'Tuvalu', 'Uganda', 'Ukraine',
  'United Arab Emirates', 'United Kingdom', 'United States', 'Uruguay', 'Uzbekistan', 'Vanuatu', 'Vatican City', 'Venezuela', 'Vietnam',
  'Western Sahara', 'Yemen', 'Zambia', 'Zimbabwe',
];

/** Other names and abbreviations seen in exports → canonical name. Keys are folded. */
const ALIASES: Readonly<Record<string, string>> = {
  usa: 'United States', us: 'United States', 'united states of america': 'United States', america: 'United States',
  uk: 'United Kingdom', gb: 'United Kingdom', 'great britain': 'United Kingdom', britain: 'United Kingdom',
  uae: 'United Arab Emirates', 'russian federation': 'Russia', czechia: 'Czech Republic', holland: 'Netherlands',
  'the netherlands': 'Netherlands', 'the bahamas': 'Bahamas', 'the gambia': 'Gambia', macedonia: 'North Macedonia',
  swaziland: 'Eswatini', burma: 'Myanmar', "cote d'ivoire": 'Ivory Coast', 'cote divoire': 'Ivory Coast', 'timor-leste': 'East Timor',
  'cabo verde': 'Cape Verde', 'republic of korea': 'South Korea', korea: 'South Korea', dprk: 'North Korea', 'viet nam': 'Vietnam',
  'lao pdr': 'Laos', 'syrian arab republic': 'Syria', 'iran, islamic republic of': 'Iran', 'dr congo': 'Democratic Republic of the Congo',
  drc: 'Democratic Republic of the Congo', 'congo, democratic republic of the': 'Democratic Republic of the Congo', congo: 'Republic of the Congo',
  'holy see': 'Vatican City', turkiye: 'Turkey', prc: 'China', "people's republic of china": 'China', 'peoples republic of china': 'China',
  'brasil': 'Brazil', 'deutschland': 'Germany', 'espana': 'Spain', 'schweiz': 'Switzerland', 'suisse': 'Switzerland',
};

/** Lower case, no accents, no dots, "&" as "and", single spaces. */
export function foldCountry(raw: string): string {
  return raw
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/&/g, ' and ')
    .replace(/\./g, '')
    .replace(/[’`]/g, "'")
    .replace(/\s+/g, ' ')
    .trim();
}

const BY_FOLDED = new Map<string, string>();
for (const name of COUNTRIES) BY_FOLDED.set(foldCountry(name), name);
for (const [alias, name] of Object.entries(ALIASES)) BY_FOLDED.set(foldCountry(alias), name);
const FOLDED_KEYS = [...BY_FOLDED.keys()];

export interface CountryMatch {
  name: string;
  /** How it was recognised: exact (after folding), alias, typo, or unknown (kept, capitalised). */
  via: 'exact' | 'alias' | 'typo' | 'unknown';
}

/** The canonical name of a country, or null when the input is empty. */
export function normalizeCountry(raw: string): CountryMatch | null {
  const folded = foldCountry(raw);
  if (folded === '') return null;
  const direct = BY_FOLDED.get(folded);
  if (direct !== undefined) return { name: direct, via: ALIASES[folded] === undefined ? 'exact' : 'alias' };
  const letters = folded.replace(/[^a-z]/g, '').length;
  const budget = letters >= 9 ? 2 : letters >= 5 ? 1 : 0;
  if (budget > 0) {
    let best: string | null = null;
    let bestDistance = budget + 1;
    let tie = false;
    for (const key of FOLDED_KEYS) {
      if (Math.abs(key.length - folded.length) > budget) continue;
      const d = editDistance(folded, key, budget);
      if (d < bestDistance) {
        bestDistance = d;
        best = key;
        tie = false;
      } else if (d === bestDistance && best !== null && BY_FOLDED.get(key) !== BY_FOLDED.get(best)) {
        tie = true;
      }
    }
    if (best !== null && !tie) return { name: BY_FOLDED.get(best)!, via: 'typo' };
  }
  return { name: capitalizeWords(raw), via: 'unknown' };
}

const SMALL_WORDS = new Set(['and', 'of', 'the', 'da', 'de', 'del', 'des', 'du', 'la', 'le', 'y', 'et', 'von', 'van', 'on', 'upon']);

/** "bosnia and herzegovina" → "Bosnia and Herzegovina", "GUINEA-BISSAU" → "Guinea-Bissau". */
export function capitalizeWords(raw: string): string {
  const words = raw.trim().replace(/\s+/g, ' ').toLowerCase().split(' ');
  return words
    .map((word, i) => (i > 0 && SMALL_WORDS.has(word) ? word : word.replace(/(^|[-'(/])(\p{L})/gu, (_, before: string, letter: string) => before + letter.toUpperCase())))
    .join(' ');
}

/** Optimal-string-alignment distance (adjacent swaps count once), cut off above `limit`. */
export function editDistance(a: string, b: string, limit = Number.POSITIVE_INFINITY): number {
  const n = a.length;
  const m = b.length;
  if (Math.abs(n - m) > limit) return limit + 1;
  let previous2 = new Array<number>(m + 1).fill(0);
  let previous = Array.from({ length: m + 1 }, (_, j) => j);
  let current = new Array<number>(m + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    current[0] = i;
    let rowMin = current[0];
    for (let j = 1; j <= m; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, previous2[j - 2] + 1);
      current[j] = d;
      if (d < rowMin) rowMin = d;
    }
    if (rowMin > limit) return limit + 1;
    [previous2, previous, current] = [previous, current, previous2];
  }
  return previous[m];
}
