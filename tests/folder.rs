//! Image folders for the ImageNet family: made here, small, with junk in them.

mod common;
use common::*;
use image::{Rgb, RgbImage};
use rand::SeedableRng;
use reslab::data::folder::{BadImages, ImageFolder};
use std::path::Path;

/// 3 classes with a dominant colour each, 8 training and 2 validation images per class, of
/// assorted sizes; plus a text file and a corrupt JPEG in train/.
fn make_folder(root: &Path) {
    make_folder_of(root, 8);
}

/// [`make_folder`] with `train_per_class` training images per class.
fn make_folder_of(root: &Path, train_per_class: usize) {
    let colours = [[200u8, 30, 30], [30, 200, 30], [30, 30, 200]];
    for (split, count) in [("train", train_per_class), ("val", 2)] {
        for (c, colour) in colours.iter().enumerate() {
            let dir = root.join(split).join(format!("class{c}"));
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..count {
                let (w, h) = (40 + 7 * i as u32, 36 + 5 * (i as u32 % 3));
                let image = RgbImage::from_fn(w, h, |x, y| {
                    let noise = ((x * 31 + y * 17 + i as u32 * 7) % 50) as u8;
                    Rgb([
                        colour[0].saturating_add(noise),
                        colour[1].saturating_add(noise),
                        colour[2].saturating_add(noise),
                    ])
                });
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                image.save(dir.join(format!("{i}.{ext}"))).unwrap();
            }
        }
    }
    std::fs::write(root.join("train/class0/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("train/class1/broken.jpg"), b"\xff\xd8\xff\xe0 truncated").unwrap();
}

#[test]
fn unreadable_files_are_skipped_and_counted_or_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let folder = ImageFolder::open(dir.path(), 32, BadImages::Skip).unwrap();
    assert_eq!(folder.classes, ["class0", "class1", "class2"]);
    assert_eq!((folder.num_train(), folder.num_val(), folder.skipped), (24, 6, 2));
    let err = format!("{:#}", ImageFolder::open(dir.path(), 32, BadImages::Error).err().unwrap());
    assert!(err.contains("broken.jpg") || err.contains("notes.txt"), "{err}");
}

#[test]
fn batches_have_the_input_size_and_ten_crops_differ() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    let folder = ImageFolder::open(dir.path(), 32, BadImages::Skip).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (images, labels) = folder.train_batch(&[0, 5, 23], &mut rng);
    assert_eq!(images.size(), vec![3, 3, 32, 32]);
    assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), vec![0, 0, 2]);
    let (centre, _) = folder.val_batch(0, 6, 0);
    let (corner, _) = folder.val_batch(0, 6, 1);
    let (mirror, _) = folder.val_batch(0, 6, 5);
    assert_eq!(centre.size(), vec![6, 3, 32, 32]);
    assert!(!centre.equal(&corner));
    let unnormalised = |t: &tch::Tensor| t + &folder.mean;
    let expected = unnormalised(&centre).flip([3]);
    assert!(unnormalised(&mirror).allclose(&expected, 1e-5, 1e-6, false), "crop 5 is the mirrored centre crop");
}

#[test]
fn an_imagenet_net_trains_on_a_folder_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(&dir.path().join("data"));
    let out = dir.path().join("run");
    let output = reslab(&[
        "train",
        "--model",
        "resnet-18",
        "--shortcut",
        "A",
        "--data",
        dir.path().join("data").to_str().unwrap(),
        "--input-size",
        "32",
        "--batch-size",
        "8",
        "--iters",
        "4",
        "--eval-every",
        "2",
        "--test-crops",
        "ten-crop",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("skipped 2 unreadable"), "{}", stderr(&output));
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("input_size = 32") && config.contains("test_crops = \"ten-crop\""), "{config}");
    // The run's weights export with a 3-way classifier.
    let exported = dir.path().join("r18.safetensors");
    let output = reslab(&["export", "--run", out.to_str().unwrap(), "--out", exported.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("resnet-18 (A)"), "{}", stdout(&output));
}

#[test]
fn a_folder_without_val_is_refused_with_the_layout_expected() {
    let dir = tempfile::tempdir().unwrap();
    make_folder(dir.path());
    std::fs::remove_dir_all(dir.path().join("val")).unwrap();
    let output = reslab(&["train", "--model", "resnet-18", "--data", dir.path().to_str().unwrap(), "--iters", "1"]);
    assert_clean_error(&output, &["val", "is missing", "ROOT/train/<class>"]);
}

/// The width-vs-paths study (ResNet-50 against ResNeXt-50 32x4d) runs from its experiment file on
/// an image folder, with Xie et al.'s numbers beside the runs.
#[test]
fn the_width_vs_paths_study_runs_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("images");
    // The quick preset's batch of 64 needs 64 training images.
    make_folder_of(&data, 22);
    let out = dir.path().join("study");
    let output = reslab(&[
        "reproduce",
        "width-vs-paths",
        "--data",
        data.to_str().unwrap(),
        "--iters",
        "1",
        "--eval-every",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = std::fs::read_to_string(out.join("table_width_vs_paths.csv")).unwrap();
    let row = |name: &str| {
        table.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {table}")).to_string()
    };
    assert!(row("resnet-50,").contains(",23.9"), "{table}");
    assert!(row("resnext-50-32x4d,").contains(",22.2"), "{table}");
    // (The 101-layer pair is named only in its claim's row, as not measured.)
    assert!(
        !table.lines().any(|l| l.starts_with("resnet-101")),
        "the quick preset runs the 50-layer pair only: {table}"
    );
}
