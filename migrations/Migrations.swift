import Foundation

/// The SQL migrations under `migrations/sqlite` and `migrations/postgres`, shipped as resources of this target
/// so that the files in the repository stay the single source of truth for the schema.
public enum HeraldMigrations {
    /// The bundle that holds the `sqlite` and `postgres` folders.
    public static var bundle: Bundle { Bundle.module }
}
