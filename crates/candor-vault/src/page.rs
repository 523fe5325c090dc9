//! Reading a long list a page at a time: the items after a cursor, a bounded number of them, so
//! no request's work or memory grows with a customer's whole record.

use crate::VaultError;

/// The most items one page holds.
pub const MAX_PAGE: usize = 500;
/// The items a page holds when the caller does not say.
pub const DEFAULT_PAGE: usize = 100;

/// Which part of a list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The cursor: the items after this one (the list's own order key, such as a leaf index);
    /// `None` starts at the beginning.
    pub after: Option<u64>,
    /// At most this many, 1 to [`MAX_PAGE`].
    pub limit: usize,
}

impl Page {
    /// The first page of the default size.
    pub const FIRST: Page = Page {
        after: None,
        limit: DEFAULT_PAGE,
    };

    /// A page as a caller asked for it; a limit outside 1 to [`MAX_PAGE`] is refused, not
    /// silently cut, so a caller never mistakes a short page for the end.
    pub fn new(after: Option<u64>, limit: Option<usize>) -> Result<Page, VaultError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(VaultError::Invalid(format!(
                "a page holds 1 to {MAX_PAGE} items"
            )));
        }
        Ok(Page { after, limit })
    }

    /// The first order key the page may hold.
    pub(crate) fn start(&self) -> u64 {
        self.after.map_or(0, |after| after.saturating_add(1))
    }

    /// Cuts `items`, read with one more than the limit, to the page, and says where the next
    /// page starts: after the page's last item, or `None` at the end.
    pub(crate) fn cut<T>(
        &self,
        mut items: Vec<T>,
        key: impl Fn(&T) -> u64,
    ) -> (Vec<T>, Option<u64>) {
        if items.len() <= self.limit {
            return (items, None);
        }
        items.truncate(self.limit);
        let next = items.last().map(key);
        (items, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_bounded_and_says_where_the_next_starts() {
        assert!(Page::new(None, Some(0)).is_err());
        assert!(Page::new(None, Some(MAX_PAGE + 1)).is_err());
        let page = Page::new(Some(7), Some(2)).unwrap();
        assert_eq!(page.start(), 8);
        assert_eq!(page.cut(vec![8, 9, 10], |&k| k), (vec![8, 9], Some(9)));
        assert_eq!(page.cut(vec![8, 9], |&k| k), (vec![8, 9], None));
        assert_eq!(Page::new(Some(u64::MAX), None).unwrap().start(), u64::MAX);
    }
}
