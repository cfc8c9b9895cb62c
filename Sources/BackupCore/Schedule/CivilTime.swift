/// Proleptic Gregorian calendar arithmetic on "wall seconds": a local date and time of day
/// written as if it were UTC (seconds since 1970-01-01 00:00 of the same wall clock). Wall
/// seconds have no gaps and no repeats, so the cron search walks them with plain integers and
/// only converts to real instants with the zone's UTC offsets (see `CronExpression.nextRun`).
/// The algorithms are Howard Hinnant's `days_from_civil`/`civil_from_days`
/// (https://howardhinnant.github.io/date_algorithms.html).
enum CivilTime {
  static let secondsPerDay = 86_400

  /// Days since 1970-01-01 for a year, month (1-12) and day (1-31).
  static func days(year: Int, month: Int, day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let monthIndex = month > 2 ? month - 3 : month + 9
    let dayOfYear = (153 * monthIndex + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
  }

  /// The year, month (1-12) and day (1-31) of a day count since 1970-01-01.
  static func date(days: Int) -> (year: Int, month: Int, day: Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthIndex = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
    let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
  }

  static func isLeapYear(_ year: Int) -> Bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
  }

  static func daysInMonth(year: Int, month: Int) -> Int {
    switch month {
    case 2: return isLeapYear(year) ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
  }

  /// 0 = Sunday ... 6 = Saturday (1970-01-01 was a Thursday).
  static func weekday(days: Int) -> Int {
    floorMod(days + 4, 7)
  }

  static func floorDiv(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
  }

  static func floorMod(_ a: Int, _ b: Int) -> Int {
    a - floorDiv(a, b) * b
  }
}
