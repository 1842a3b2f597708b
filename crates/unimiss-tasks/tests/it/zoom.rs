use candle::{Device, Tensor};
use unimiss_tasks::TaskError;
use unimiss_tasks::zoom::*;

use crate::close;

fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>, TaskError> {
    Ok(t.squeeze(0)?.to_vec2::<f32>()?)
}

#[test]
fn linear_zoom_up_by_hand() -> Result<(), TaskError> {
    let t = Tensor::new(&[[[0f32, 10.], [1., 11.], [2., 12.]]], &Device::Cpu)?;
    let z = zoom_pos_table(&t, 5, ClassEntry::Include)?;
    assert_eq!(rows(&z)?, vec![vec![0., 10.], vec![0.5, 10.5], vec![1., 11.], vec![1.5, 11.5], vec![2., 12.]]);
    // non-linear values: 3 → 4 entries, src = o·2/3
    let t = Tensor::new(&[[[0f32], [4.], [2.]]], &Device::Cpu)?;
    let z = rows(&zoom_pos_table(&t, 4, ClassEntry::Include)?)?;
    for (a, b) in z.iter().map(|r| r[0] as f64).zip([0.0, 8.0 / 3.0, 10.0 / 3.0, 2.0]) {
        close(a, b, 1e-6, "3→4");
    }
    Ok(())
}

#[test]
fn linear_zoom_down_and_drop_class_entry() -> Result<(), TaskError> {
    let t = Tensor::new(&[[[0f32], [1.], [4.], [9.], [16.]]], &Device::Cpu)?;
    assert_eq!(rows(&zoom_pos_table(&t, 3, ClassEntry::Include)?)?, vec![vec![0.], vec![4.], vec![16.]]);
    // class entry dropped first: the remaining [1, 4, 9, 16] zoomed to 3, src = o·1.5
    let z = rows(&zoom_pos_table(&t, 3, ClassEntry::Drop)?)?;
    assert_eq!(z, vec![vec![1.], vec![6.5], vec![16.]]);
    // same size after the drop: unchanged
    assert_eq!(rows(&zoom_pos_table(&t, 4, ClassEntry::Drop)?)?, vec![vec![1.], vec![4.], vec![9.], vec![16.]]);
    Ok(())
}

#[test]
fn official_ricord_sizes() -> Result<(), TaskError> {
    // 10 → 65 with the class entry (pos_embed3D4, [16,96,96] → [64,128,128]): ends map to ends
    let t = Tensor::arange(0f32, 10., &Device::Cpu)?.reshape((1, 10, 1))?;
    let z = rows(&zoom_pos_table(&t, 65, ClassEntry::Include)?)?;
    assert_eq!(z.len(), 65);
    close(z[64][0] as f64, 9.0, 1e-6, "last");
    close(z[1][0] as f64, 9.0 / 64.0, 1e-6, "second");
    assert!(zoom_pos_table(&Tensor::zeros((2, 3, 1), candle::DType::F32, &Device::Cpu)?, 4, ClassEntry::Include).is_err());
    Ok(())
}
