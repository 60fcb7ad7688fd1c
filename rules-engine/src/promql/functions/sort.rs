// Copyright 2009 The Go Authors. BSD-style license (Go's `sort` and `container/heap`).
//! Go's `container/heap` operations and `sort.Sort`'s small-input insertion sort, so that ties
//! among equal values (topk/bottomk, sort, sort_desc) resolve the way Prometheus 2.42 resolves
//! them. Inputs above 12 elements use a stable merge sort ordered by the same `less` (Go's
//! pdqsort may order ties differently there).

/// `heap.Push`: appends and sifts up.
pub(crate) fn heap_push<T>(h: &mut Vec<T>, x: T, less: fn(&[T], usize, usize) -> bool) {
    h.push(x);
    let mut j = h.len() - 1;
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(h, j, i) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

/// `heap.Pop`: removes and returns the least element.
pub(crate) fn heap_pop<T>(h: &mut Vec<T>, less: fn(&[T], usize, usize) -> bool) -> Option<T> {
    let n = h.len().checked_sub(1)?;
    h.swap(0, n);
    let mut i = 0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && less(h, j2, j1) {
            j = j2;
        }
        if !less(h, j, i) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
    h.pop()
}

/// `sort.Sort` with `less(data, i, j)`.
pub(crate) fn go_sort<T: Clone>(data: &mut [T], less: impl Fn(&[T], usize, usize) -> bool) {
    let n = data.len();
    if n <= 12 {
        for i in 1..n {
            let mut j = i;
            while j > 0 && less(data, j, j - 1) {
                data.swap(j, j - 1);
                j -= 1;
            }
        }
        return;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    let snapshot = data.to_vec();
    idx.sort_by(|&a, &b| {
        if less(&snapshot, a, b) {
            std::cmp::Ordering::Less
        } else if less(&snapshot, b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    for (dst, src) in idx.into_iter().enumerate() {
        data[dst] = snapshot[src].clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn less(h: &[f64], i: usize, j: usize) -> bool {
        h[i] < h[j]
    }

    #[test]
    fn heap_pops_in_order() {
        let mut h = Vec::new();
        for x in [5.0, 1.0, 4.0, 2.0, 3.0] {
            heap_push(&mut h, x, less);
        }
        let got: Vec<f64> = std::iter::from_fn(|| heap_pop(&mut h, less)).collect();
        assert_eq!(got, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn insertion_sort_is_stable_for_ties() {
        let mut v = vec![(1, 'a'), (0, 'b'), (1, 'c'), (0, 'd')];
        go_sort(&mut v, |d, i, j| d[i].0 < d[j].0);
        assert_eq!(v, vec![(0, 'b'), (0, 'd'), (1, 'a'), (1, 'c')]);
    }
}
