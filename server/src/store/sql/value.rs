//! The little of SQL the store's logic needs, spoken the same way to SQLite and to PostgreSQL, so
//! that logic (every write's rules, the change stream, both protocols' reads) is written once
//! ([`super`], [`super::stream`]) and each backend only says how to run a statement.
//!
//! Statements are written with SQLite's numbered parameters (`?1`); the PostgreSQL backend turns
//! them into `$1`. Values are integers, text or NULL: the schema stores nothing else (parts are
//! JSON text, times RFC 3339 text, flags 0/1).

use super::StoreError;

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(&'a str),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a &'a str> for Arg<'a> {
    fn from(v: &'a &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::Null, Arg::Text)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().map_or(Arg::Null, Arg::Text)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::Null, Arg::Int)
    }
}

/// Parameters for [`Sql`]'s calls: `args![a, b]`.
macro_rules! args {
    ($($e:expr),* $(,)?) => {
        &[$($crate::store::sql::value::Arg::from($e)),*][..]
    };
}
pub(crate) use args;

/// A column value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer (or a boolean, as 0/1).
    Int(i64),
    /// Text.
    Text(String),
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Cell>);

impl Row {
    /// Column `i` as a `T`; a type that does not fit is a [`StoreError::Corrupt`].
    pub fn get<T: FromCell>(&self, i: usize) -> Result<T, StoreError> {
        let cell = self
            .0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {i}")))?;
        T::from_cell(cell).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "column {i} holds {cell:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A Rust value a [`Cell`] converts to.
pub trait FromCell: Sized {
    /// The value, or `None` when the cell holds something else.
    fn from_cell(cell: &Cell) -> Option<Self>;
}

impl FromCell for i64 {
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl FromCell for u64 {
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
}

impl FromCell for bool {
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Int(v) => Some(*v != 0),
            _ => None,
        }
    }
}

impl FromCell for String {
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(cell: &Cell) -> Option<Self> {
        match cell {
            Cell::Null => Some(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// A connection (or a transaction on one) that runs statements. Every call of the store's logic
/// happens inside one transaction its backend opened: a write transaction on the writer, a
/// snapshot on a reader.
pub trait Sql {
    /// Runs a statement; returns the number of rows it changed.
    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError>;
    /// Runs a query; returns its rows.
    fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError>;

    /// A write that nothing in this transaction reads back: a backend may hold it and send it
    /// with the commit, in order with the others held (an error then fails the commit).
    /// PostgreSQL does, so a transaction's change rows and room updates cost one round trip
    /// together instead of one each, while the deployment's write lock is held (ADR 0017);
    /// SQLite runs it at once. Only for statements whose rows no later statement of the same
    /// transaction reads.
    fn execute_later(&self, sql: &str, args: &[Arg<'_>]) -> Result<(), StoreError> {
        self.execute(sql, args).map(drop)
    }

    /// The first row of a query, if any.
    fn query_opt(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first row of a query that always answers one (an aggregate).
    fn query_one(&self, sql: &str, args: &[Arg<'_>]) -> Result<Row, StoreError> {
        self.query_opt(sql, args)?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from {sql}")))
    }
}
